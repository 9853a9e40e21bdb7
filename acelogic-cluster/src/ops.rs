//! The operator's view of operation keys: list, show, release.

use std::collections::BTreeMap;

use etcd_client::{DeleteOptions, GetOptions, TxnOp, TxnOpResponse};

use crate::{
    Error, EtcdStore,
    keys::{self, Completed, Entry, Holder, Intent},
};

/// One entry of an operation key, with its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpEntry {
    Holder { holder: Holder, token: u64 },
    Intent { intent: Intent, token: u64 },
    Completed(Completed),
}

/// Everything the store holds for one operation key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operation {
    pub key: String,
    pub holder: Option<(Holder, u64)>,
    pub intent: Option<(Intent, u64)>,
    pub completed: Option<Completed>,
}

impl Operation {
    /// `held`, `unsettled`, `completed` or `free`.
    #[must_use]
    pub fn state(&self) -> &'static str {
        if self.holder.is_some() {
            "held"
        } else if self.intent.is_some() {
            "unsettled"
        } else if self.completed.is_some() {
            "completed"
        } else {
            "free"
        }
    }

    fn add(&mut self, entry: Entry, kv: &etcd_client::KeyValue) -> Result<(), Error> {
        let token = u64::try_from(kv.create_revision()).unwrap_or(0);
        match entry {
            Entry::Holder => self.holder = Some((keys::decode(kv.key(), kv.value())?, token)),
            Entry::Intent => self.intent = Some((keys::decode(kv.key(), kv.value())?, token)),
            Entry::Completed => self.completed = Some(keys::decode(kv.key(), kv.value())?),
        }
        Ok(())
    }
}

impl EtcdStore {
    /// Every operation key the store holds anything for, by key.
    pub async fn operations(&self) -> Result<Vec<Operation>, Error> {
        let kvs = self.below(self.layout.ops()).await?;
        let mut by_key: BTreeMap<String, Operation> = BTreeMap::new();
        for kv in &kvs {
            let Some((key, entry)) = self.layout.parse_op(kv.key()) else {
                tracing::warn!(key = %String::from_utf8_lossy(kv.key()), "not an operation entry; ignored");
                continue;
            };
            by_key
                .entry(key.clone())
                .or_insert_with(|| Operation {
                    key,
                    ..Operation::default()
                })
                .add(entry, kv)?;
        }
        Ok(by_key.into_values().collect())
    }

    /// One operation key (all its entries empty when the store holds
    /// nothing for it).
    pub async fn operation(&self, key: &str) -> Result<Operation, Error> {
        let kvs = self.below(self.layout.op_dir(key)).await?;
        self.gather(key, &kvs)
    }

    /// Every entry below `prefix`, within the timeout.
    async fn below(&self, prefix: String) -> Result<Vec<etcd_client::KeyValue>, Error> {
        let mut kv = self.client.kv_client();
        self.bounded(async move {
            Ok(kv
                .get(prefix, Some(GetOptions::new().with_prefix()))
                .await?
                .take_kvs())
        })
        .await
    }

    /// The entries of `key` among `kvs`.
    fn gather(&self, key: &str, kvs: &[etcd_client::KeyValue]) -> Result<Operation, Error> {
        let mut op = Operation {
            key: key.to_owned(),
            ..Operation::default()
        };
        for kv in kvs {
            if let Some((_, entry)) = self.layout.parse_op(kv.key()) {
                op.add(entry, kv)?;
            }
        }
        Ok(op)
    }

    /// An administrator's release: the holder, intent and completion of
    /// `key` go at once, in one transaction; returns what was there. The
    /// holder's node sees its holder deleted and removes the kernel grant.
    pub async fn release(&self, key: &str) -> Result<Operation, Error> {
        let mut kv = self.client.kv_client();
        let prefix = self.layout.op_dir(key);
        let r = self
            .bounded(async move {
                Ok(kv
                    .txn(etcd_client::Txn::new().and_then([TxnOp::delete(
                        prefix,
                        Some(DeleteOptions::new().with_prefix().with_prev_key()),
                    )]))
                    .await?)
            })
            .await?;
        let was: Vec<etcd_client::KeyValue> = r
            .op_responses()
            .into_iter()
            .filter_map(|resp| match resp {
                TxnOpResponse::Delete(d) => Some(d.prev_kvs().to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        self.gather(key, &was)
    }
}
