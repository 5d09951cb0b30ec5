//! `c2c-gateway calls show ID`: one call record (phone numbers masked) and its CRM
//! webhook delivery state, from the store or, with `--gateway`, from the owner API of a
//! running gateway. Both print the document built by [`crate::calls::detail`].

use c2c_callstate::SledCallStore;

use super::common::{block_on, open_db, print_json, CliResult, Failure};
use super::CallsShowArgs;
use crate::calls::detail::call_detail;

/// `calls show`: prints the call detail document.
pub fn show(a: CallsShowArgs) -> CliResult {
    if !c2c_callstate::is_valid_call_id(&a.call_id) {
        return Err(Failure::Usage(format!(
            "{:?} is not a call id (c2c_ followed by 32 hex digits)",
            a.call_id
        )));
    }
    if let Some(r) = a.gateway.remote()? {
        return block_on(async move {
            let v = r
                .get(&format!("/api/c2c/owner/calls/{}", a.call_id))
                .await?;
            print_json(&v);
            Ok(())
        });
    }
    block_on(async {
        let store: std::sync::Arc<dyn c2c_callstate::CallStore> =
            match super::shared_store::open(&a.policy.policies).await? {
                Some(pg) => pg,
                None => {
                    let db = open_db(&a.data.data, false, true)?;
                    std::sync::Arc::new(
                        SledCallStore::open_with_db(db).map_err(|e| {
                            Failure::failed(format!("cannot open the call store: {e}"))
                        })?,
                    )
                }
            };
        let detail = call_detail(&*store, &a.call_id)
            .await
            .map_err(|e| Failure::failed(format!("cannot read call {}: {e}", a.call_id)))?
            .ok_or_else(|| Failure::failed(format!("no call {} in the store", a.call_id)))?;
        print_json(&detail);
        Ok(())
    })
}
