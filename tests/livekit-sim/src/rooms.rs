//! Rooms and participants in memory, with LiveKit's lifecycle rules:
//! CreateRoom is idempotent; joining a missing room auto-creates it; a room nobody
//! joined closes after `empty_timeout`, a room whose last participant left closes
//! after `departure_timeout`; DeleteRoom disconnects everyone (`ROOM_DELETED`);
//! a second join with the same identity evicts the first (`DUPLICATE_IDENTITY`).
//!
//! Every change that LiveKit reports by webhook is emitted here, while the lock is
//! held, so events leave in the order the state changed.
//!
//! Bounded: at most `max_rooms` rooms and `max_participants` per room. Each room
//! owns a `watch::Sender` and each scripted participant a `oneshot::Sender`; timer
//! and script tasks hold the receivers, so dropping a room or participant ends them.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use livekit_protocol as proto;
use parking_lot::Mutex;
use proto::participant_info::{Kind, State};
use proto::DisconnectReason;
use tokio::sync::{oneshot, watch};

use crate::core::Counters;
use crate::ids::{guid, PARTICIPANT_PREFIX, ROOM_PREFIX, TRACK_PREFIX};
use crate::twirp::{code, TwirpError};
use crate::webhooks::{event, WebhookSink};

pub(crate) type SharedRooms = Arc<Mutex<Rooms>>;

/// Resolves a `wait_until_answered` CreateSIPParticipant request.
pub(crate) type AnswerWaiter = oneshot::Sender<Result<(), TwirpError>>;

/// Limits and defaults for the room model.
#[derive(Clone, Debug)]
pub(crate) struct RoomRules {
    pub max_rooms: usize,
    pub max_participants: usize,
    pub default_empty_timeout: Duration,
    pub default_departure_timeout: Duration,
}

pub(crate) struct ParticipantEntry {
    pub info: proto::ParticipantInfo,
    /// Dropped when the participant goes; its receiver ends the participant's script.
    _alive: Option<oneshot::Sender<()>>,
    waiter: Option<AnswerWaiter>,
}

struct RoomEntry {
    info: proto::Room,
    participants: Vec<ParticipantEntry>,
    /// Bumped whenever an idle timer is armed or invalidated (someone joined).
    idle_generation: u64,
    /// Dropped with the room; idle-timer tasks wait on its receivers.
    alive: watch::Sender<()>,
}

pub(crate) struct Rooms {
    rooms: HashMap<String, RoomEntry>,
    rules: RoomRules,
    sink: WebhookSink,
    counters: Arc<Counters>,
    weak: Weak<Mutex<Rooms>>,
    /// Bumped on every join, leave, track publication and room close, so waiters
    /// (an inbound SIP call waiting for an agent's audio) re-check without polling.
    changes: watch::Sender<u64>,
}

/// A new participant to add to a room.
pub(crate) struct NewParticipant {
    pub info: proto::ParticipantInfo,
    pub alive: Option<oneshot::Sender<()>>,
    pub waiter: Option<AnswerWaiter>,
}

impl Rooms {
    pub(crate) fn new_shared(
        rules: RoomRules,
        sink: WebhookSink,
        counters: Arc<Counters>,
    ) -> SharedRooms {
        Arc::new_cyclic(|weak| {
            Mutex::new(Rooms {
                rooms: HashMap::new(),
                rules,
                sink,
                counters,
                weak: weak.clone(),
                changes: watch::Sender::new(0),
            })
        })
    }

    /// A receiver that changes whenever participants or their tracks change.
    pub(crate) fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether a participant of `room` other than `sid` satisfies `pred`.
    pub(crate) fn any_other(
        &self,
        room: &str,
        sid: &str,
        pred: impl Fn(&proto::ParticipantInfo) -> bool,
    ) -> bool {
        self.rooms.get(room).is_some_and(|r| {
            r.participants
                .iter()
                .any(|p| p.info.sid != sid && pred(&p.info))
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }

    /// CreateRoom: returns the existing room unchanged if it exists.
    pub(crate) fn create_room(
        &mut self,
        req: &proto::CreateRoomRequest,
    ) -> Result<proto::Room, TwirpError> {
        if let Some(existing) = self.rooms.get(&req.name) {
            return Ok(existing.info.clone());
        }
        self.insert_room(
            &req.name,
            req.empty_timeout,
            req.departure_timeout,
            req.max_participants,
            &req.metadata,
        )
    }

    fn insert_room(
        &mut self,
        name: &str,
        empty_timeout: u32,
        departure_timeout: u32,
        max_participants: u32,
        metadata: &str,
    ) -> Result<proto::Room, TwirpError> {
        if name.is_empty() {
            return Err(TwirpError::new(
                code::INVALID_ARGUMENT,
                "room name cannot be empty",
            ));
        }
        if self.rooms.len() >= self.rules.max_rooms {
            return Err(TwirpError::new(
                code::RESOURCE_EXHAUSTED,
                "simulator room limit reached",
            ));
        }
        let (now_s, now_ms) = now();
        let info = proto::Room {
            sid: guid(ROOM_PREFIX),
            name: name.to_owned(),
            // LiveKit fills server defaults into the returned room.
            empty_timeout: nonzero_or(empty_timeout, self.rules.default_empty_timeout),
            departure_timeout: nonzero_or(departure_timeout, self.rules.default_departure_timeout),
            max_participants,
            creation_time: now_s,
            creation_time_ms: now_ms,
            metadata: metadata.to_owned(),
            ..Default::default()
        };
        let (alive, _) = watch::channel(());
        self.rooms.insert(
            name.to_owned(),
            RoomEntry {
                info: info.clone(),
                participants: Vec::new(),
                idle_generation: 0,
                alive,
            },
        );
        self.counters.room_created();
        self.sink.emit(event(event::ROOM_STARTED, &info, None));
        self.arm_idle_timer(name, Duration::from_secs(u64::from(info.empty_timeout)));
        Ok(info)
    }

    /// DeleteRoom: disconnects everyone with `ROOM_DELETED`, then `room_finished`.
    pub(crate) fn delete_room(&mut self, name: &str) -> Result<(), TwirpError> {
        if !self.rooms.contains_key(name) {
            return Err(TwirpError::new(
                code::NOT_FOUND,
                "requested room does not exist",
            ));
        }
        self.close_room(name, DisconnectReason::RoomDeleted);
        self.counters.room_deleted();
        Ok(())
    }

    fn close_room(&mut self, name: &str, reason: DisconnectReason) {
        let Some(mut room) = self.rooms.remove(name) else {
            return;
        };
        let leaving = std::mem::take(&mut room.participants);
        let total = leaving.len();
        for (i, entry) in leaving.into_iter().enumerate() {
            // Each participant_left reports the room as it is after that participant went.
            room.info.num_participants = u32::try_from(total - i - 1).unwrap_or(0);
            self.emit_left(&room.info, entry, reason);
        }
        room.info.num_participants = 0;
        room.info.num_publishers = 0;
        self.sink
            .emit(event(event::ROOM_FINISHED, &room.info, None));
        self.changed();
        // `room.alive` drops here, ending this room's idle timers.
    }

    pub(crate) fn list_rooms(&self, names: &[String]) -> Vec<proto::Room> {
        let mut rooms: Vec<proto::Room> = self
            .rooms
            .values()
            .filter(|r| names.is_empty() || names.contains(&r.info.name))
            .map(|r| r.info.clone())
            .collect();
        rooms.sort_by_key(|r| r.creation_time_ms);
        rooms
    }

    /// ListParticipants: a missing room lists as empty, as in LiveKit.
    pub(crate) fn participants(&self, room: &str) -> Vec<proto::ParticipantInfo> {
        self.rooms
            .get(room)
            .map(|r| r.participants.iter().map(|p| p.info.clone()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn participant(&self, room: &str, identity: &str) -> Option<proto::ParticipantInfo> {
        self.rooms
            .get(room)?
            .participants
            .iter()
            .find(|p| p.info.identity == identity)
            .map(|p| p.info.clone())
    }

    /// Adds a participant, auto-creating the room with server defaults.
    pub(crate) fn add_participant(
        &mut self,
        room_name: &str,
        new: NewParticipant,
    ) -> Result<proto::ParticipantInfo, TwirpError> {
        if !self.rooms.contains_key(room_name) {
            self.insert_room(room_name, 0, 0, 0, "")?;
        }
        let identity = new.info.identity.clone();
        if self.participant(room_name, &identity).is_some() {
            self.remove_participant(
                room_name,
                &identity,
                None,
                DisconnectReason::DuplicateIdentity,
            );
        }
        let max = self.rules.max_participants;
        let room = self
            .rooms
            .get_mut(room_name)
            .ok_or_else(|| TwirpError::new(code::NOT_FOUND, "requested room does not exist"))?;
        let room_max = usize::try_from(room.info.max_participants).unwrap_or(usize::MAX);
        if room.participants.len() >= max || (room_max > 0 && room.participants.len() >= room_max) {
            return Err(TwirpError::new(code::RESOURCE_EXHAUSTED, "room is full"));
        }
        room.participants.push(ParticipantEntry {
            info: new.info.clone(),
            _alive: new.alive,
            waiter: new.waiter,
        });
        room.idle_generation += 1; // someone is here: pending idle timers are stale
        refresh_counts(room);
        let snapshot = room.info.clone();
        self.sink.emit(event(
            event::PARTICIPANT_JOINED,
            &snapshot,
            Some(new.info.clone()),
        ));
        self.changed();
        Ok(new.info)
    }

    /// Removes a participant (optionally only if its sid matches) and emits
    /// `participant_left`. Returns the final participant info.
    pub(crate) fn remove_participant(
        &mut self,
        room_name: &str,
        identity: &str,
        sid: Option<&str>,
        reason: DisconnectReason,
    ) -> Option<proto::ParticipantInfo> {
        let room = self.rooms.get_mut(room_name)?;
        let idx = room
            .participants
            .iter()
            .position(|p| p.info.identity == identity && sid.is_none_or(|s| p.info.sid == s))?;
        let entry = room.participants.remove(idx);
        refresh_counts(room);
        let now_empty = room.participants.is_empty();
        let departure = Duration::from_secs(u64::from(room.info.departure_timeout));
        let snapshot = room.info.clone();
        let info = self.emit_left(&snapshot, entry, reason);
        if now_empty {
            self.arm_idle_timer(room_name, departure);
        }
        self.changed();
        Some(info)
    }

    fn emit_left(
        &self,
        room: &proto::Room,
        mut entry: ParticipantEntry,
        reason: DisconnectReason,
    ) -> proto::ParticipantInfo {
        entry.info.state = State::Disconnected as i32;
        entry.info.disconnect_reason = reason as i32;
        entry.info.version += 1;
        if let Some(waiter) = entry.waiter.take() {
            // A dial still waiting for its answer learns the participant is gone.
            let _ = waiter.send(Err(TwirpError::new(
                code::CANCELED,
                "sip participant left before the call was answered",
            )));
        }
        self.sink.emit(event(
            event::PARTICIPANT_LEFT,
            room,
            Some(entry.info.clone()),
        ));
        entry.info
    }

    /// Sets one attribute on the participant with `sid` (no webhook: LiveKit has none
    /// for attribute changes). Returns false if the participant is gone.
    pub(crate) fn set_attribute(&mut self, room: &str, sid: &str, key: &str, value: &str) -> bool {
        let Some(entry) = self.find_by_sid(room, sid) else {
            return false;
        };
        entry
            .info
            .attributes
            .insert(key.to_owned(), value.to_owned());
        entry.info.version += 1;
        true
    }

    /// Publishes `track` for the participant with `sid` (`track_published` webhook).
    /// Returns false if the participant is gone.
    pub(crate) fn publish_track(&mut self, room: &str, sid: &str, track: proto::TrackInfo) -> bool {
        let Some(entry) = self.find_by_sid(room, sid) else {
            return false;
        };
        entry.info.tracks.push(track.clone());
        entry.info.version += 1;
        let participant = entry.info.clone();
        if let Some(r) = self.rooms.get(room) {
            let mut ev = event(event::TRACK_PUBLISHED, &r.info, Some(participant));
            ev.track = Some(track);
            self.sink.emit(ev);
        }
        self.changed();
        true
    }

    /// Takes the `wait_until_answered` waiter of the participant with `sid`.
    pub(crate) fn take_waiter(&mut self, room: &str, sid: &str) -> Option<AnswerWaiter> {
        self.find_by_sid(room, sid)?.waiter.take()
    }

    /// The identity of the participant with `sid`, if still present.
    pub(crate) fn identity_of(&mut self, room: &str, sid: &str) -> Option<String> {
        self.find_by_sid(room, sid).map(|p| p.info.identity.clone())
    }

    fn find_by_sid(&mut self, room: &str, sid: &str) -> Option<&mut ParticipantEntry> {
        self.rooms
            .get_mut(room)?
            .participants
            .iter_mut()
            .find(|p| p.info.sid == sid)
    }

    /// Drops everything without webhooks (simulator shutdown).
    pub(crate) fn clear(&mut self) {
        self.rooms.clear();
    }

    fn arm_idle_timer(&mut self, room_name: &str, after: Duration) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        room.idle_generation += 1;
        let generation = room.idle_generation;
        let mut alive = room.alive.subscribe();
        let weak = self.weak.clone();
        let name = room_name.to_owned();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(after) => {}
                // Err once the room (and its sender) is gone: nothing left to close.
                _ = alive.changed() => return,
            }
            if let Some(rooms) = weak.upgrade() {
                rooms.lock().close_if_idle(&name, generation);
            }
        });
    }

    fn close_if_idle(&mut self, name: &str, generation: u64) {
        let idle = self
            .rooms
            .get(name)
            .is_some_and(|r| r.idle_generation == generation && r.participants.is_empty());
        if idle {
            self.close_room(name, DisconnectReason::RoomClosed);
            self.counters.room_closed_idle();
        }
    }
}

/// A published microphone track (`cid`: the client's id for it, if any).
pub(crate) fn microphone_track(cid: &str) -> proto::TrackInfo {
    proto::TrackInfo {
        sid: guid(TRACK_PREFIX),
        r#type: proto::TrackType::Audio as i32,
        name: if cid.is_empty() {
            "microphone".to_owned()
        } else {
            cid.to_owned()
        },
        source: proto::TrackSource::Microphone as i32,
        mime_type: "audio/opus".to_owned(),
        ..Default::default()
    }
}

/// Participant info for a non-SIP participant joining through the test hook.
pub(crate) fn standard_participant(identity: &str, name: &str) -> proto::ParticipantInfo {
    let (now_s, now_ms) = now();
    proto::ParticipantInfo {
        sid: guid(PARTICIPANT_PREFIX),
        identity: identity.to_owned(),
        name: name.to_owned(),
        state: State::Active as i32,
        joined_at: now_s,
        joined_at_ms: now_ms,
        version: 1,
        kind: Kind::Standard as i32,
        is_publisher: true,
        permission: Some(proto::ParticipantPermission {
            can_subscribe: true,
            can_publish: true,
            can_publish_data: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn refresh_counts(room: &mut RoomEntry) {
    room.info.num_participants = u32::try_from(room.participants.len()).unwrap_or(u32::MAX);
    room.info.num_publishers = u32::try_from(
        room.participants
            .iter()
            .filter(|p| p.info.is_publisher)
            .count(),
    )
    .unwrap_or(u32::MAX);
}

fn nonzero_or(value: u32, default: Duration) -> u32 {
    if value > 0 {
        value
    } else {
        u32::try_from(default.as_secs()).unwrap_or(u32::MAX)
    }
}

/// (Unix seconds, Unix milliseconds).
pub(crate) fn now() -> (i64, i64) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    (ms / 1000, ms)
}
