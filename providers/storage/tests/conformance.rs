//! The conformance suite against the two stores this crate ships.

#![cfg(feature = "conformance")]

mod local {
    use std::sync::Arc;

    use offsite_storage::conformance::Fixture;
    use offsite_storage::LocalStore;

    async fn setup() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path().join("store"));
        Fixture {
            store: Arc::new(store),
            guard: Box::new(dir),
        }
    }

    offsite_storage::conformance_suite!(setup);
}

mod memory {
    use std::sync::Arc;

    use offsite_storage::conformance::Fixture;
    use offsite_storage::MemoryStore;

    async fn setup() -> Fixture {
        // Small parts so multipart paths (many parts, abort, drop) are cheap to exercise.
        Fixture::new(Arc::new(MemoryStore::new().with_part_size(64 * 1024)))
    }

    offsite_storage::conformance_suite!(setup);

    #[tokio::test]
    async fn retention_is_extended_never_shortened() {
        offsite_storage::conformance::retention_is_extended_never_shortened(&MemoryStore::new())
            .await;
    }

    #[tokio::test]
    async fn a_locked_object_is_neither_overwritten_nor_deleted() {
        use offsite_storage::{ErrorKind, LockMode, PutOptions, Retention, Storage, StorageExt};
        let store = MemoryStore::new();
        let mut opts = PutOptions::default();
        opts.retention = Some(Retention {
            mode: LockMode::Compliance,
            retain_until: chrono::Utc::now() + chrono::Duration::days(1),
        });
        let data = offsite_storage::conformance::pattern(10, 1);
        store.put_bytes("k", data.clone(), opts).await.unwrap();
        let e = store
            .put_bytes("k", data, PutOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Locked);
        assert_eq!(
            store.delete("k").await.unwrap_err().kind(),
            ErrorKind::Locked
        );
        let mut held = PutOptions::default();
        held.legal_hold = true;
        let data = offsite_storage::conformance::pattern(10, 2);
        store.put_bytes("h", data, held).await.unwrap();
        assert_eq!(
            store.delete("h").await.unwrap_err().kind(),
            ErrorKind::Locked
        );
        // A lock whose time is over no longer holds.
        let mut past = PutOptions::default();
        past.retention = Some(Retention {
            mode: LockMode::Governance,
            retain_until: chrono::Utc::now() - chrono::Duration::seconds(1),
        });
        let data = offsite_storage::conformance::pattern(10, 3);
        store.put_bytes("old", data, past).await.unwrap();
        store.delete("old").await.unwrap();
    }

    #[tokio::test]
    async fn aborted_and_dropped_uploads_are_cleaned_up() {
        use offsite_storage::{PutOptions, Storage};
        let store = MemoryStore::new().with_part_size(1024);
        let mut w = store.writer("a", PutOptions::default()).await.unwrap();
        w.write(offsite_storage::conformance::pattern(5000, 1))
            .await
            .unwrap();
        assert_eq!(store.open_uploads(), 1);
        w.abort().await.unwrap();
        assert_eq!(store.open_uploads(), 0);
        let mut w = store.writer("b", PutOptions::default()).await.unwrap();
        w.write(offsite_storage::conformance::pattern(5000, 1))
            .await
            .unwrap();
        drop(w);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(store.open_uploads(), 0);
    }
}
