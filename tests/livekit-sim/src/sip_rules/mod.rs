//! Inbound SIP trunks and dispatch rules in memory: what `livekit.SIP/
//! {Create,List,Delete}SIP{InboundTrunk,DispatchRule}` and `DeleteSIPTrunk` manage
//! (livekit-server `pkg/service/sip.go`), and what an inbound INVITE is matched
//! against ([`matching`]).
//!
//! Behaviour kept from LiveKit: ids `ST_`/`SDR_` + 12 base62; creation validates the
//! request, then the new entry together with every stored one (conflicts are
//! `invalid_argument` with LiveKit's message); lists come back sorted by id;
//! `DeleteSIPTrunk` answers `{sip_trunk_id}` even for an unknown id (LiveKit deletes
//! with `HDEL`, which does not care); `DeleteSIPDispatchRule` of an unknown id is
//! `not_found`; deleting a trunk leaves the rules that name it.
//!
//! Bounded by `SimLimits::{max_sip_trunks, max_dispatch_rules}` (`resource_exhausted`).

pub(crate) mod matching;
pub(crate) mod provision;
pub(crate) mod validate;

use livekit_protocol as proto;

use crate::ids::guid;
use crate::twirp::{code, TwirpError};

pub(crate) const TRUNK_PREFIX: &str = "ST_";
pub(crate) const RULE_PREFIX: &str = "SDR_";

fn invalid(msg: String) -> TwirpError {
    TwirpError::new(code::INVALID_ARGUMENT, msg)
}

/// The stored trunks and rules.
pub(crate) struct SipRules {
    trunks: Vec<proto::SipInboundTrunkInfo>,
    rules: Vec<proto::SipDispatchRuleInfo>,
    max_trunks: usize,
    max_rules: usize,
}

impl SipRules {
    pub(crate) fn new(max_trunks: usize, max_rules: usize) -> Self {
        Self {
            trunks: Vec::new(),
            rules: Vec::new(),
            max_trunks,
            max_rules,
        }
    }

    pub(crate) fn trunks(&self) -> &[proto::SipInboundTrunkInfo] {
        &self.trunks
    }

    pub(crate) fn rules(&self) -> &[proto::SipDispatchRuleInfo] {
        &self.rules
    }

    /// `CreateSIPInboundTrunk`.
    pub(crate) fn create_trunk(
        &mut self,
        req: proto::CreateSipInboundTrunkRequest,
    ) -> Result<proto::SipInboundTrunkInfo, TwirpError> {
        validate::trunk_request(&req).map_err(invalid)?;
        let Some(mut info) = req.trunk else {
            return Err(invalid("missing trunk".to_owned()));
        };
        // Validated with its id still empty, so a conflict names it "<new>" as LiveKit does.
        validate::trunk_conflicts(&self.trunks, &info).map_err(invalid)?;
        if self.trunks.len() >= self.max_trunks {
            return Err(TwirpError::new(
                code::RESOURCE_EXHAUSTED,
                "simulator SIP trunk limit reached",
            ));
        }
        info.sip_trunk_id = guid(TRUNK_PREFIX);
        self.trunks.push(info.clone());
        Ok(info)
    }

    /// `ListSIPInboundTrunk` with its `trunk_ids` / `numbers` filters.
    pub(crate) fn list_trunks(
        &self,
        req: &proto::ListSipInboundTrunkRequest,
    ) -> Vec<proto::SipInboundTrunkInfo> {
        let wanted_number = |t: &proto::SipInboundTrunkInfo| {
            req.numbers.is_empty()
                || t.numbers.is_empty()
                || t.numbers.iter().any(|n| {
                    req.numbers.iter().any(|r| {
                        r == n || validate::normalize_number(r) == validate::normalize_number(n)
                    })
                })
        };
        let mut out: Vec<_> = self
            .trunks
            .iter()
            .filter(|t| req.trunk_ids.is_empty() || req.trunk_ids.contains(&t.sip_trunk_id))
            .filter(|t| wanted_number(t))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.sip_trunk_id.cmp(&b.sip_trunk_id));
        out
    }

    /// `DeleteSIPTrunk` (inbound trunks: the only kind the simulator stores).
    pub(crate) fn delete_trunk(&mut self, id: &str) -> Result<proto::SipTrunkInfo, TwirpError> {
        if id.is_empty() {
            return Err(invalid("trunk ID is required".to_owned()));
        }
        self.trunks.retain(|t| t.sip_trunk_id != id);
        Ok(proto::SipTrunkInfo {
            sip_trunk_id: id.to_owned(),
            ..Default::default()
        })
    }

    /// `CreateSIPDispatchRule`.
    pub(crate) fn create_rule(
        &mut self,
        req: proto::CreateSipDispatchRuleRequest,
    ) -> Result<proto::SipDispatchRuleInfo, TwirpError> {
        let mut info = validate::rule_request(req).map_err(invalid)?;
        validate::rule_conflicts(self.rules.iter().chain(std::iter::once(&info)))
            .map_err(invalid)?;
        if self.rules.len() >= self.max_rules {
            return Err(TwirpError::new(
                code::RESOURCE_EXHAUSTED,
                "simulator SIP dispatch rule limit reached",
            ));
        }
        info.sip_dispatch_rule_id = guid(RULE_PREFIX);
        self.rules.push(info.clone());
        Ok(info)
    }

    /// `ListSIPDispatchRule` with its `dispatch_rule_ids` / `trunk_ids` filters (a
    /// wildcard rule matches any trunk filter).
    pub(crate) fn list_rules(
        &self,
        req: &proto::ListSipDispatchRuleRequest,
    ) -> Vec<proto::SipDispatchRuleInfo> {
        let mut out: Vec<_> = self
            .rules
            .iter()
            .filter(|r| {
                req.dispatch_rule_ids.is_empty()
                    || req.dispatch_rule_ids.contains(&r.sip_dispatch_rule_id)
            })
            .filter(|r| {
                req.trunk_ids.is_empty()
                    || r.trunk_ids.is_empty()
                    || r.trunk_ids.iter().any(|t| req.trunk_ids.contains(t))
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a.sip_dispatch_rule_id.cmp(&b.sip_dispatch_rule_id));
        out
    }

    /// `DeleteSIPDispatchRule`: returns the deleted rule.
    pub(crate) fn delete_rule(
        &mut self,
        id: &str,
    ) -> Result<proto::SipDispatchRuleInfo, TwirpError> {
        if id.is_empty() {
            return Err(invalid("dispatch rule ID is required".to_owned()));
        }
        let idx = self
            .rules
            .iter()
            .position(|r| r.sip_dispatch_rule_id == id)
            .ok_or_else(|| {
                TwirpError::new(
                    code::NOT_FOUND,
                    "requested sip dispatch rule does not exist",
                )
            })?;
        Ok(self.rules.remove(idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::sip_dispatch_rule::Rule;

    fn trunk_req(addresses: &[&str]) -> proto::CreateSipInboundTrunkRequest {
        proto::CreateSipInboundTrunkRequest {
            trunk: Some(proto::SipInboundTrunkInfo {
                allowed_addresses: addresses.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn trunks_are_bounded_and_deleted_by_id() {
        let mut store = SipRules::new(1, 1);
        let t = store.create_trunk(trunk_req(&["127.0.0.1"])).unwrap();
        assert!(t.sip_trunk_id.starts_with(TRUNK_PREFIX));
        let again = store.create_trunk(trunk_req(&["10.0.0.1"])).unwrap_err();
        assert_eq!(again.code, code::INVALID_ARGUMENT, "second default trunk");
        assert_eq!(
            store.delete_trunk(&t.sip_trunk_id).unwrap().sip_trunk_id,
            t.sip_trunk_id
        );
        store.delete_trunk("ST_unknown").unwrap();
        assert!(store.trunks().is_empty());
    }

    #[test]
    fn rules_filter_and_delete() {
        let mut store = SipRules::new(4, 4);
        let rule = |trunks: &[&str]| proto::CreateSipDispatchRuleRequest {
            dispatch_rule: Some(proto::SipDispatchRuleInfo {
                trunk_ids: trunks.iter().map(|s| (*s).to_owned()).collect(),
                rule: Some(proto::SipDispatchRule {
                    rule: Some(Rule::DispatchRuleCallee(Default::default())),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = store.create_rule(rule(&["ST_a"])).unwrap();
        let wild = store.create_rule(rule(&[])).unwrap();
        let only_b = proto::ListSipDispatchRuleRequest {
            trunk_ids: vec!["ST_b".into()],
            ..Default::default()
        };
        let listed = store.list_rules(&only_b);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].sip_dispatch_rule_id, wild.sip_dispatch_rule_id);
        store.delete_rule(&a.sip_dispatch_rule_id).unwrap();
        let gone = store.delete_rule(&a.sip_dispatch_rule_id).unwrap_err();
        assert_eq!(gone.code, code::NOT_FOUND);
    }
}
