//! The overlay's durable store (redb, one file `overlay.redb` under
//! `[storage] data_dir`): every change is committed before the API or webhook
//! answers 2xx, and loaded back at startup.
//!
//! Tables:
//! - `cues`: (stream, emsg id) → [`StoredCue`] JSON: the request that made the
//!   cue and its `Idempotency-Key`, so replays still answer the same cue.
//! - `webhooks`: arrival sequence → [`StoredEvent`] JSON: every verified
//!   delivery (applied or not), replayed in order into dedup and the drops.
//!   Only the fields the adapters keep are stored: no personal data.
//! - `meta`: the schema version.

use std::path::{Path, PathBuf};

use overlay::webhook::{
    EventKind, InventoryLevel, Line, Money, Order, OrderEvent, Refund, Source, Version,
};
use overlay::{CueState, PartRef, Placement};
use packager::units::{MediaTime, Msn, PartIndex, WallTime};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const CUES: TableDefinition<(&str, u32), &str> = TableDefinition::new("cues");
const WEBHOOKS: TableDefinition<u64, &str> = TableDefinition::new("webhooks");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_VERSION: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("overlay store {path}: {source}")]
    Db {
        path: PathBuf,
        source: Box<redb::Error>,
    },
    #[error("overlay store {path}: schema version {found}, this build reads {SCHEMA_VERSION}")]
    Schema { path: PathBuf, found: u64 },
    #[error("overlay store {path}: unreadable record {key}: {message}")]
    Corrupt {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// One cue as saved.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredCue {
    pub id: String,
    pub emsg_id: u32,
    /// The cue API body that scheduled it (drop cues: an equivalent body).
    pub request: String,
    pub idempotency_key: Option<String>,
    /// The final payload (an `offer-open` gains its token when placed).
    pub payload: serde_json::Value,
    pub state: StoredState,
}

#[derive(Copy, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum StoredState {
    Pending,
    Placed {
        media_time: i64,
        start_us: i64,
    },
    Aired {
        media_time: i64,
        start_us: i64,
        msn: u64,
        part: u32,
    },
    Cancelled,
}

impl From<CueState> for StoredState {
    fn from(s: CueState) -> Self {
        match s {
            CueState::Pending => Self::Pending,
            CueState::Placed(p) => Self::Placed {
                media_time: p.media_time.0,
                start_us: p.start.0,
            },
            CueState::Aired { placement, landed } => Self::Aired {
                media_time: placement.media_time.0,
                start_us: placement.start.0,
                msn: landed.msn.0,
                part: landed.part.0,
            },
            CueState::Cancelled => Self::Cancelled,
        }
    }
}

impl From<StoredState> for CueState {
    fn from(s: StoredState) -> Self {
        let placement = |media_time, start_us| Placement {
            media_time: MediaTime(media_time),
            start: WallTime(start_us),
        };
        match s {
            StoredState::Pending => Self::Pending,
            StoredState::Placed {
                media_time,
                start_us,
            } => Self::Placed(placement(media_time, start_us)),
            StoredState::Aired {
                media_time,
                start_us,
                msn,
                part,
            } => Self::Aired {
                placement: placement(media_time, start_us),
                landed: PartRef {
                    msn: Msn(msn),
                    part: PartIndex(part),
                },
            },
            StoredState::Cancelled => Self::Cancelled,
        }
    }
}

/// A verified webhook delivery, in the adapters' PII-free form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredEvent {
    source: String,
    webhook_id: String,
    occurred_at_us: i64,
    version: (i64, i64),
    kind: StoredKind,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum StoredKind {
    Order {
        order_id: String,
        lines: Vec<(String, u32)>,
        total: Option<(i64, String)>,
        offer_id: Option<String>,
    },
    Refund {
        order_id: String,
        refund_id: String,
        amount: Option<(i64, String)>,
        restock: Vec<(String, u32)>,
    },
    Inventory {
        item_id: String,
        location_id: Option<String>,
        available: i64,
    },
}

fn lines_out(lines: &[Line]) -> Vec<(String, u32)> {
    lines
        .iter()
        .map(|l| (l.product_id.clone(), l.quantity))
        .collect()
}

fn lines_in(lines: Vec<(String, u32)>) -> Vec<Line> {
    lines
        .into_iter()
        .map(|(product_id, quantity)| Line {
            product_id,
            quantity,
        })
        .collect()
}

fn money_out(m: Option<&Money>) -> Option<(i64, String)> {
    m.map(|m| (m.minor, m.currency.clone()))
}

fn money_in(m: Option<(i64, String)>) -> Option<Money> {
    m.map(|(minor, currency)| Money { minor, currency })
}

pub fn source_name(s: Source) -> &'static str {
    match s {
        Source::Shopify => "shopify",
        Source::Stripe => "stripe",
        Source::Plain => "plain",
    }
}

impl From<&OrderEvent> for StoredEvent {
    fn from(e: &OrderEvent) -> Self {
        let kind = match &e.kind {
            EventKind::Order(o) => StoredKind::Order {
                order_id: o.order_id.clone(),
                lines: lines_out(&o.lines),
                total: money_out(o.total.as_ref()),
                offer_id: o.offer_id.clone(),
            },
            EventKind::Refund(r) => StoredKind::Refund {
                order_id: r.order_id.clone(),
                refund_id: r.refund_id.clone(),
                amount: money_out(r.amount.as_ref()),
                restock: lines_out(&r.restock),
            },
            EventKind::Inventory(i) => StoredKind::Inventory {
                item_id: i.item_id.clone(),
                location_id: i.location_id.clone(),
                available: i.available,
            },
        };
        Self {
            source: source_name(e.source).to_owned(),
            webhook_id: e.webhook_id.clone(),
            occurred_at_us: e.occurred_at.0,
            version: (e.version.at_ms, e.version.seq),
            kind,
        }
    }
}

impl StoredEvent {
    fn into_event(self) -> Option<OrderEvent> {
        let source = match self.source.as_str() {
            "shopify" => Source::Shopify,
            "stripe" => Source::Stripe,
            "plain" => Source::Plain,
            _ => return None,
        };
        let kind = match self.kind {
            StoredKind::Order {
                order_id,
                lines,
                total,
                offer_id,
            } => EventKind::Order(Order {
                order_id,
                lines: lines_in(lines),
                total: money_in(total),
                offer_id,
            }),
            StoredKind::Refund {
                order_id,
                refund_id,
                amount,
                restock,
            } => EventKind::Refund(Refund {
                order_id,
                refund_id,
                amount: money_in(amount),
                restock: lines_in(restock),
            }),
            StoredKind::Inventory {
                item_id,
                location_id,
                available,
            } => EventKind::Inventory(InventoryLevel {
                item_id,
                location_id,
                available,
            }),
        };
        Some(OrderEvent {
            source,
            webhook_id: self.webhook_id,
            occurred_at: WallTime(self.occurred_at_us),
            version: Version {
                at_ms: self.version.0,
                seq: self.version.1,
            },
            kind,
        })
    }
}

/// Everything the store holds, as read at startup.
#[derive(Debug, Default)]
pub struct Loaded {
    /// (stream, cue), by stream then emsg id (scheduling order).
    pub cues: Vec<(String, StoredCue)>,
    /// Verified deliveries in arrival order.
    pub events: Vec<OrderEvent>,
}

pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) `data_dir/overlay.redb`. A file that is not a redb
    /// database, or of another schema version, is an error: never replaced.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Dir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("overlay.redb");
        let db = Database::create(&path).map_err(|e| StoreError::Db {
            path: path.clone(),
            source: Box::new(e.into()),
        })?;
        let store = Self { db, path };
        store.init()?;
        Ok(store)
    }

    fn db_err(&self) -> impl Fn(redb::Error) -> StoreError + '_ {
        |source| StoreError::Db {
            path: self.path.clone(),
            source: Box::new(source),
        }
    }

    fn init(&self) -> Result<(), StoreError> {
        let err = self.db_err();
        let tx = self.db.begin_write().map_err(|e| err(e.into()))?;
        let found = {
            tx.open_table(CUES).map_err(|e| err(e.into()))?;
            tx.open_table(WEBHOOKS).map_err(|e| err(e.into()))?;
            let mut meta = tx.open_table(META).map_err(|e| err(e.into()))?;
            let found = meta
                .get("schema")
                .map_err(|e| err(e.into()))?
                .map(|v| v.value());
            if found.is_none() {
                meta.insert("schema", SCHEMA_VERSION)
                    .map_err(|e| err(e.into()))?;
            }
            found
        };
        if let Some(found) = found.filter(|&v| v != SCHEMA_VERSION) {
            return Err(StoreError::Schema {
                path: self.path.clone(),
                found,
            });
        }
        tx.commit().map_err(|e| err(e.into()))
    }

    /// Reads everything back. A record that does not decode is an error.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let err = self.db_err();
        let corrupt = |key: String, message: String| StoreError::Corrupt {
            path: self.path.clone(),
            key,
            message,
        };
        let tx = self.db.begin_read().map_err(|e| err(e.into()))?;
        let mut loaded = Loaded::default();
        let cues = tx.open_table(CUES).map_err(|e| err(e.into()))?;
        for row in cues.iter().map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let (stream, emsg_id) = k.value();
            let cue: StoredCue = serde_json::from_str(v.value())
                .map_err(|e| corrupt(format!("cues/{stream}/{emsg_id}"), e.to_string()))?;
            loaded.cues.push((stream.to_owned(), cue));
        }
        let hooks = tx.open_table(WEBHOOKS).map_err(|e| err(e.into()))?;
        for row in hooks.iter().map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let key = format!("webhooks/{}", k.value());
            let stored: StoredEvent =
                serde_json::from_str(v.value()).map_err(|e| corrupt(key.clone(), e.to_string()))?;
            let event = stored
                .into_event()
                .ok_or_else(|| corrupt(key, "unknown source".to_owned()))?;
            loaded.events.push(event);
        }
        Ok(loaded)
    }

    /// Commits cue changes and (optionally) one delivery in one durable
    /// transaction: all of it is on disk when this returns `Ok`.
    ///
    /// # Errors
    /// [`StoreError`]; then nothing was written.
    pub fn commit(
        &self,
        cues: &[(&str, StoredCue)],
        event: Option<&OrderEvent>,
    ) -> Result<(), StoreError> {
        let err = self.db_err();
        let tx = self.db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut table = tx.open_table(CUES).map_err(|e| err(e.into()))?;
            for (stream, cue) in cues {
                let json = serde_json::to_string(cue).unwrap_or_default();
                table
                    .insert((*stream, cue.emsg_id), json.as_str())
                    .map_err(|e| err(e.into()))?;
            }
        }
        if let Some(event) = event {
            let mut table = tx.open_table(WEBHOOKS).map_err(|e| err(e.into()))?;
            let next = table
                .last()
                .map_err(|e| err(e.into()))?
                .map_or(0, |(k, _)| k.value() + 1);
            let json = serde_json::to_string(&StoredEvent::from(event)).unwrap_or_default();
            table
                .insert(next, json.as_str())
                .map_err(|e| err(e.into()))?;
        }
        tx.commit().map_err(|e| err(e.into()))
    }
}
