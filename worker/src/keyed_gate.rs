//! One task at a time per key, in this process: the events about one Pluggy item are
//! handled one after the other, so the second of a burst sees the sync the first one
//! committed and skips its own (`handlers::pluggy::prepare`). Across replicas two syncs
//! of one item may still run at once; the change-only upserts make that correct, only
//! not free.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Gates by key; a key's entry lives only while someone holds or waits for it.
#[derive(Debug, Default)]
pub struct KeyedGate {
    gates: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// Held while the key's task runs.
#[derive(Debug)]
pub struct Pass<'a> {
    owner: &'a KeyedGate,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedGate {
    /// Waits until no other task holds `key`.
    pub async fn enter(&self, key: &str) -> Pass<'_> {
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            gates.entry(key.to_owned()).or_default().clone()
        };
        Pass {
            owner: self,
            key: key.to_owned(),
            guard: Some(gate.lock_owned().await),
        }
    }

    /// Keys currently held or waited for.
    pub fn len(&self) -> usize {
        self.gates.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// No key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut gates = self.owner.gates.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map's own reference left: nobody waits, the entry goes.
        if gates
            .get(&self.key)
            .is_some_and(|g| Arc::strong_count(g) == 1)
        {
            gates.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_holder_per_key_and_entries_go_when_free() {
        let gate = Arc::new(KeyedGate::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _pass = gate.enter("item-1").await;
                order.lock().unwrap().push(format!("start {i}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                order.lock().unwrap().push(format!("end {i}"));
            }));
        }
        // Another key is not held up.
        let other = gate.enter("item-2").await;
        drop(other);
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        for pair in order.chunks(2) {
            assert_eq!(pair[0].replace("start", "end"), pair[1], "{order:?}");
        }
        assert!(gate.is_empty(), "no entry left behind");
    }
}
