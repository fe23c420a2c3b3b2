//! Configuration of the commerce overlay: where its store lives, the webhook
//! and offer secrets, and the drops of each stream (`[[streams.NAME.drops]]`).
//!
//! Secrets come from a file named in the config or from `DROPLINE_*`
//! variables (see `config.rs`); they are never written back out.

use std::path::{Path, PathBuf};

use overlay::drop::{DropConfig, DropProduct, Stage, StockSource};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Folder of the durable store (`overlay.redb`): cues, idempotency keys,
    /// drop inventory events and processed webhook ids.
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
        }
    }
}

/// Webhook signing secrets, one per source; a source without one answers 404.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub shopify_secret_file: Option<PathBuf>,
    pub stripe_secret_file: Option<PathBuf>,
    pub plain_secret_file: Option<PathBuf>,
    /// `DROPLINE_WEBHOOK_SHOPIFY_SECRET` (env only).
    #[serde(skip)]
    pub shopify_secret: Option<String>,
    /// `DROPLINE_WEBHOOK_STRIPE_SECRET` (env only).
    #[serde(skip)]
    pub stripe_secret: Option<String>,
    /// `DROPLINE_WEBHOOK_PLAIN_SECRET` (env only).
    #[serde(skip)]
    pub plain_secret: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("shopify_secret_file", &self.shopify_secret_file)
            .field("stripe_secret_file", &self.stripe_secret_file)
            .field("plain_secret_file", &self.plain_secret_file)
            .finish_non_exhaustive()
    }
}

/// Drop offers: the key that signs offer tokens (shared with checkout).
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OfferConfig {
    pub key_file: Option<PathBuf>,
    /// `DROPLINE_OFFER_KEY` (env only).
    #[serde(skip)]
    pub key: Option<String>,
    /// Nominal viewer latency: a token is valid from cue PDT + this.
    pub hold_back_ms: u64,
}

impl Default for OfferConfig {
    fn default() -> Self {
        Self {
            key_file: None,
            key: None,
            hold_back_ms: 1_500,
        }
    }
}

impl std::fmt::Debug for OfferConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfferConfig")
            .field("key_file", &self.key_file)
            .field("hold_back_ms", &self.hold_back_ms)
            .finish_non_exhaustive()
    }
}

/// `[[streams.NAME.drops]]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DropSettings {
    pub id: String,
    /// `orders` (orders take units, restocking refunds give them back) or
    /// `inventory-levels` (absolute levels from inventory webhooks).
    #[serde(default)]
    pub source: DropSource,
    pub products: Vec<DropProductSettings>,
    /// In order; only the first may omit `at_most`.
    pub stages: Vec<StageSettings>,
}

#[derive(Copy, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DropSource {
    #[default]
    Orders,
    InventoryLevels,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DropProductSettings {
    pub product_id: String,
    pub inventory_item_id: Option<String>,
    pub stock: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StageSettings {
    pub label: String,
    pub at_most: Option<u64>,
}

impl DropSettings {
    #[must_use]
    pub fn to_config(&self) -> DropConfig {
        DropConfig {
            id: self.id.clone(),
            products: self
                .products
                .iter()
                .map(|p| DropProduct {
                    product_id: p.product_id.clone(),
                    inventory_item_id: p.inventory_item_id.clone(),
                    stock: p.stock,
                })
                .collect(),
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    label: s.label.clone(),
                    at_most: s.at_most,
                })
                .collect(),
            source: match self.source {
                DropSource::Orders => StockSource::Orders,
                DropSource::InventoryLevels => StockSource::InventoryLevels,
            },
        }
    }
}

/// A secret given inline (from the environment) or in a file (trailing
/// whitespace trimmed); the inline one wins. `Ok(None)` if neither is set.
///
/// # Errors
/// The file cannot be read, or the secret is empty.
pub fn resolve_secret(inline: Option<&str>, file: Option<&Path>) -> Result<Option<String>, String> {
    let secret = match (inline, file) {
        (Some(s), _) => s.to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .trim_end()
            .to_owned(),
        (None, None) => return Ok(None),
    };
    if secret.is_empty() {
        return Err("is empty".to_owned());
    }
    Ok(Some(secret))
}

/// The overlay is on when anything uses it: a stream with a cue API token or
/// drops, a webhook secret, or an offer key. Otherwise no store is opened, so
/// gateways without commerce need no `data_dir` (and can share a folder).
#[must_use]
pub fn enabled(cfg: &crate::config::Config) -> bool {
    let w = &cfg.webhooks;
    cfg.streams
        .values()
        .any(|s| s.api_token.is_some() || s.api_token_file.is_some() || !s.drops.is_empty())
        || [&w.shopify_secret, &w.stripe_secret, &w.plain_secret]
            .iter()
            .any(|s| s.is_some())
        || [
            &w.shopify_secret_file,
            &w.stripe_secret_file,
            &w.plain_secret_file,
        ]
        .iter()
        .any(|s| s.is_some())
        || cfg.offers.key.is_some()
        || cfg.offers.key_file.is_some()
}
