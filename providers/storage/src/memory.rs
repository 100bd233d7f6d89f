//! `MemoryStore`: a complete store in process memory (`memory://name`), for tests and dry runs.
//!
//! It writes through the shared [`MultipartWriter`], so the conformance suite exercises the same
//! buffering, concurrency and abort paths the cloud adapters use. Stores opened with the same
//! name in one process share their objects. It holds retention locks and legal holds as the
//! clouds do (a locked object can be neither deleted nor overwritten until its time, by this
//! machine's clock), so lock-following logic runs against it too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::multipart::{Multipart, MultipartWriter, Part, PartLimits, PartReceipt};
use crate::retry::RetryPolicy;
use crate::storage::{GetResult, ListStream, ObjectWriter, Storage};
use crate::types::{
    key_under_prefix, validate_key, Capabilities, Checksum, GetRange, ObjectMeta, PutOptions,
    Receipt, Retention,
};

const PROVIDER: &str = "memory";
const PAGE: usize = 1000;

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    meta: ObjectMeta,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Object>,
    /// Open uploads: id -> (key, parts received so far).
    uploads: HashMap<u64, (String, BTreeMap<u32, Bytes>)>,
}

/// An in-memory store.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    url: String,
    part_size: u64,
    state: Arc<Mutex<State>>,
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Mutex<State>>>> {
    static REG: OnceLock<Mutex<HashMap<String, Arc<Mutex<State>>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

impl MemoryStore {
    /// Default part size of the store's multipart writer.
    pub const DEFAULT_PART_SIZE: u64 = 1 << 20;

    /// The store named `name` in this process (created empty on first use).
    pub fn named(name: &str) -> Self {
        let state = registry()
            .lock()
            .expect("memory registry poisoned")
            .entry(name.to_string())
            .or_default()
            .clone();
        MemoryStore {
            url: format!("memory://{name}"),
            part_size: Self::DEFAULT_PART_SIZE,
            state,
        }
    }

    /// A fresh store nobody else shares.
    pub fn new() -> Self {
        let n: u64 = rand::random();
        Self::named(&format!("anon-{n:016x}"))
    }

    /// Uses `part_size`-byte parts (small sizes make multipart paths cheap to test).
    pub fn with_part_size(mut self, part_size: u64) -> Self {
        self.part_size = part_size.max(1);
        self
    }

    /// Number of multipart uploads started and neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.lock().uploads.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memory store poisoned")
    }

    fn not_found(op: Operation, key: &str) -> Error {
        Error::new(ErrorKind::NotFound, PROVIDER, op, "no such object").with_key(key)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether an object's lock holds now (a retention period not yet over, or a legal hold):
/// it can then be neither deleted nor overwritten.
fn locked(meta: &ObjectMeta) -> bool {
    meta.legal_hold || meta.retention.is_some_and(|r| r.retain_until > Utc::now())
}

fn locked_error(key: &str, op: Operation) -> Error {
    Error::new(
        ErrorKind::Locked,
        PROVIDER,
        op,
        "the object is under a retention lock or legal hold",
    )
    .with_key(key)
}

fn store_object(
    state: &mut State,
    key: &str,
    data: Bytes,
    options: &PutOptions,
) -> Result<Receipt> {
    if options.if_not_exists && state.objects.contains_key(key) {
        return Err(Error::already_exists(PROVIDER, key));
    }
    if state.objects.get(key).is_some_and(|o| locked(&o.meta)) {
        return Err(locked_error(key, Operation::Put));
    }
    let checksum = Checksum::Sha256(hex::encode(Sha256::digest(&data)));
    let mut meta = ObjectMeta::new(key, data.len() as u64);
    meta.last_modified = Some(Utc::now());
    meta.checksum = Some(checksum.clone());
    meta.metadata = options.metadata.clone();
    meta.retention = options.retention;
    meta.legal_hold = options.legal_hold;
    meta.etag = Some(format!("\"{}\"", &checksum.to_string()[7..39]));
    let receipt = Receipt::new(key, meta.size, Some(checksum));
    state.objects.insert(key.to_string(), Object { data, meta });
    Ok(receipt)
}

fn check_options(options: &PutOptions, key: &str, op: Operation) -> Result<()> {
    if options.storage_class.is_some() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            PROVIDER,
            op,
            "memory stores have no storage classes",
        )
        .with_key(key));
    }
    Ok(())
}

fn no_upload(key: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        PROVIDER,
        Operation::Put,
        "no such multipart upload",
    )
    .with_key(key)
}

#[async_trait]
impl Multipart for MemoryStore {
    fn limits(&self) -> PartLimits {
        PartLimits {
            min_part_size: 1,
            max_part_size: u64::MAX,
            max_parts: 10_000,
        }
    }

    async fn create_upload(&self, key: &str, options: &PutOptions) -> Result<String> {
        validate_key(key, PROVIDER, Operation::Put)?;
        check_options(options, key, Operation::Put)?;
        let id: u64 = rand::random();
        self.lock()
            .uploads
            .insert(id, (key.to_string(), BTreeMap::new()));
        Ok(format!("{id:016x}"))
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part: Part) -> Result<PartReceipt> {
        let mut st = self.lock();
        let (k, parts) = upload(&mut st, upload_id).ok_or_else(|| no_upload(key))?;
        if k != key {
            return Err(no_upload(key));
        }
        let size = part.data.len() as u64;
        parts.insert(part.number, part.data);
        Ok(PartReceipt {
            number: part.number,
            size,
            sha256: part.sha256,
            token: None,
        })
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<PartReceipt>> {
        let mut st = self.lock();
        let (_, parts) = upload(&mut st, upload_id).ok_or_else(|| no_upload(key))?;
        Ok(parts
            .iter()
            .map(|(n, d)| PartReceipt {
                number: *n,
                size: d.len() as u64,
                sha256: Sha256::digest(d).into(),
                token: None,
            })
            .collect())
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<PartReceipt>,
        options: &PutOptions,
    ) -> Result<Receipt> {
        let mut st = self.lock();
        let id = u64::from_str_radix(upload_id, 16).map_err(|_| no_upload(key))?;
        let (_, stored) = st.uploads.remove(&id).ok_or_else(|| no_upload(key))?;
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.size as usize).sum());
        for (i, p) in parts.iter().enumerate() {
            let chunk = stored
                .get(&p.number)
                .filter(|c| p.number as usize == i + 1 && Sha256::digest(c).as_slice() == p.sha256);
            let Some(chunk) = chunk else {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    PROVIDER,
                    Operation::Put,
                    format!(
                        "part {} is missing, out of order or does not match its checksum",
                        p.number
                    ),
                )
                .with_key(key));
            };
            data.extend_from_slice(chunk);
        }
        store_object(&mut st, key, data.into(), options)
    }

    fn abort_discards_parts(&self) -> bool {
        true
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()> {
        let id = u64::from_str_radix(upload_id, 16).map_err(|_| no_upload(key))?;
        self.lock().uploads.remove(&id);
        Ok(())
    }

    async fn put_whole(&self, key: &str, part: Part, options: &PutOptions) -> Result<Receipt> {
        validate_key(key, PROVIDER, Operation::Put)?;
        check_options(options, key, Operation::Put)?;
        store_object(&mut self.lock(), key, part.data, options)
    }
}

fn upload<'a>(
    st: &'a mut State,
    upload_id: &str,
) -> Option<&'a mut (String, BTreeMap<u32, Bytes>)> {
    let id = u64::from_str_radix(upload_id, 16).ok()?;
    st.uploads.get_mut(&id)
}

#[async_trait]
impl Storage for MemoryStore {
    fn url(&self) -> &str {
        &self.url
    }

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            server_side_copy: true,
            retention: true,
            storage_classes: false,
            metadata: true,
            checksum_on_head: true,
            part_size: Some(self.part_size),
            concurrency: None,
            local: false,
            create_location: true,
            versions: false,
            extend_retention: true,
            list_uploads: true,
            ordered_listing: true,
            thaw: false,
        }
    }

    async fn create_location(&self, options: &crate::CreateOptions) -> Result<bool> {
        if options.versioning || options.object_lock {
            return Err(crate::unsupported(
                PROVIDER,
                Operation::Create,
                "keep versions or hold locks",
            ));
        }
        // A memory store exists from the moment it is opened.
        Ok(false)
    }

    fn list_uploads(&self, prefix: &str) -> crate::UploadStream<'_> {
        let mut open: Vec<crate::OpenUpload> = self
            .lock()
            .uploads
            .iter()
            .filter(|(_, (key, _))| key_under_prefix(key, prefix))
            .map(|(id, (key, _))| crate::OpenUpload::new(key.clone(), format!("{id:016x}")))
            .collect();
        open.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.id.cmp(&b.id)));
        Box::pin(stream::iter(open.into_iter().map(Ok)))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key, PROVIDER, Operation::Head)?;
        let st = self.lock();
        st.objects
            .get(key)
            .map(|o| o.meta.clone())
            .ok_or_else(|| Self::not_found(Operation::Head, key))
    }

    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult> {
        validate_key(key, PROVIDER, Operation::Get)?;
        let obj = self
            .lock()
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| Self::not_found(Operation::Get, key))?;
        let range = range
            .unwrap_or(GetRange::From(0))
            .resolve(obj.meta.size, PROVIDER, key)?;
        let mut data = obj.data.slice(range.start as usize..range.end as usize);
        let chunk = self.part_size.max(1) as usize;
        let chunks = std::iter::from_fn(move || {
            (!data.is_empty()).then(|| {
                let n = chunk.min(data.len());
                Ok(data.split_to(n))
            })
        });
        Ok(GetResult {
            meta: obj.meta,
            range,
            stream: stream::iter(chunks).boxed(),
        })
    }

    async fn writer(&self, key: &str, options: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        validate_key(key, PROVIDER, Operation::Put)?;
        check_options(&options, key, Operation::Put)?;
        Ok(Box::new(MultipartWriter::new(
            PROVIDER,
            key,
            Arc::new(self.clone()),
            options,
            self.part_size,
            4,
            RetryPolicy::default(),
        )))
    }

    async fn thaw(&self, key: &str, _days: u32) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            PROVIDER,
            Operation::Get,
            "nothing is ever archived here, so there is nothing to thaw",
        )
        .with_key(key))
    }

    fn sequential(&self) -> Option<std::sync::Arc<dyn crate::Sequential>> {
        None
    }

    fn multipart(&self) -> Option<Arc<dyn Multipart>> {
        Some(Arc::new(self.clone()))
    }

    fn list(&self, prefix: &str) -> ListStream<'_> {
        let prefix = prefix.trim_matches('/').to_string();
        // Pages of PAGE keys, each read under the lock on its own, like a paged API.
        crate::storage::flatten_pages(stream::try_unfold(Some(String::new()), move |after| {
            let prefix = prefix.clone();
            async move {
                let Some(after) = after else { return Ok(None) };
                let st = self.lock();
                let page: Vec<ObjectMeta> = st
                    .objects
                    .range::<String, _>((
                        std::ops::Bound::Excluded(after),
                        std::ops::Bound::Unbounded,
                    ))
                    .filter(|(k, _)| key_under_prefix(k, &prefix))
                    .take(PAGE)
                    .map(|(_, o)| {
                        let mut m = o.meta.clone();
                        m.checksum = None;
                        m
                    })
                    .collect();
                if page.is_empty() {
                    return Ok(None);
                }
                let next = (page.len() == PAGE).then(|| page[PAGE - 1].key.clone());
                Ok(Some((page, next)))
            }
        }))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key, PROVIDER, Operation::Delete)?;
        let mut st = self.lock();
        match st.objects.get(key) {
            None => Err(Self::not_found(Operation::Delete, key)),
            Some(o) if locked(&o.meta) => Err(locked_error(key, Operation::Delete)),
            Some(_) => {
                st.objects.remove(key);
                Ok(())
            }
        }
    }

    async fn extend_retention(&self, key: &str, retention: Retention) -> Result<Retention> {
        validate_key(key, PROVIDER, Operation::Retention)?;
        let mut st = self.lock();
        let obj = st
            .objects
            .get_mut(key)
            .ok_or_else(|| Self::not_found(Operation::Retention, key))?;
        let kept = match obj.meta.retention {
            Some(r) if r.retain_until >= retention.retain_until => r,
            Some(r) if r.mode == crate::LockMode::Compliance => Retention {
                mode: r.mode,
                retain_until: retention.retain_until,
            },
            _ => retention,
        };
        obj.meta.retention = Some(kept);
        Ok(kept)
    }

    async fn copy(&self, from: &str, to: &str, options: PutOptions) -> Result<Receipt> {
        validate_key(from, PROVIDER, Operation::Copy)?;
        validate_key(to, PROVIDER, Operation::Copy)?;
        check_options(&options, to, Operation::Copy)?;
        let mut st = self.lock();
        let src = st
            .objects
            .get(from)
            .cloned()
            .ok_or_else(|| Self::not_found(Operation::Copy, from))?;
        let mut options = options;
        if options.metadata.is_empty() {
            options.metadata = src.meta.metadata.clone();
        }
        store_object(&mut st, to, src.data, &options)
    }
}
