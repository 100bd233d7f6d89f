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
