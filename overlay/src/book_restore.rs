//! Rebuilding a [`CueBook`] from a durable store after a restart: the owner
//! saved each cue (with the request and `Idempotency-Key` that made it) and
//! hands them back here, in scheduling order, before anything else happens.

use super::{Cue, CueBook, CueState, fingerprint};
use crate::cue::CueRequest;

impl CueBook {
    /// Puts back a cue saved earlier, with the request that scheduled it and
    /// its `Idempotency-Key`, so a replay of that request still answers the
    /// same cue and its id stays taken. Queues no event (it is already stored).
    /// A cue whose id or emsg id is already held is ignored.
    pub fn restore(&mut self, cue: Cue, request: &CueRequest, idempotency_key: Option<&str>) {
        if self.by_id.contains_key(&cue.id) || self.cues.contains_key(&cue.emsg_id) {
            return;
        }
        let emsg_id = cue.emsg_id;
        self.next_emsg_id = self.next_emsg_id.max(emsg_id.wrapping_add(1));
        if let Some(key) = idempotency_key {
            self.keys
                .insert(key.to_owned(), (fingerprint(request), cue.id.clone()));
        }
        match cue.state {
            CueState::Pending => self.pending.push(emsg_id),
            CueState::Placed(p) | CueState::Aired { placement: p, .. } => {
                self.placed.insert((p.media_time, emsg_id), ());
            }
            CueState::Cancelled => {}
        }
        self.by_id.insert(cue.id.clone(), emsg_id);
        self.cues.insert(emsg_id, cue);
    }
}
