use super::*;

const T: Table = Table::new("test_kv");

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

#[derive(Debug, PartialEq)]
enum E {
    Refused,
    Store(String),
}
impl From<Error> for E {
    fn from(e: Error) -> Self {
        E::Store(e.to_string())
    }
}

async fn put(store: &Store, k: &'static str, v: &'static str) -> Result<(), E> {
    store
        .write(now(), Actor::system("test"), move |ctx| {
            ctx.put(T, k.as_bytes(), v.as_bytes())?;
            Ok(())
        })
        .await
}

async fn get(store: &Store, k: &'static str) -> Option<Vec<u8>> {
    store
        .read(move |r| r.get(T, k.as_bytes()).map_err(E::from))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_in_a_batch_changes_nothing_and_its_neighbours_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(now(), Actor::system("t"), move |ctx| {
                    if i % 3 == 0 {
                        return Err(E::Refused);
                    }
                    ctx.put(T, &i.to_be_bytes(), b"v")?;
                    Ok(i)
                })
                .await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        if i % 3 == 0 {
            assert_eq!(r, Err(E::Refused));
        } else {
            assert_eq!(r, Ok(i as u32));
        }
    }
    let n = store.read(|r| r.len(T).map_err(E::from)).await.unwrap();
    assert_eq!(n, 200 - 67);
    assert!(store.writer_stats().batches < 200, "requests were batched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_fails_after_writing_is_rolled_back_and_its_batch_reruns_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..100u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(now(), Actor::system("t"), move |ctx| {
                    ctx.put(T, &i.to_be_bytes(), b"v")?;
                    if i % 10 == 0 {
                        return Err(E::Refused);
                    }
                    Ok(())
                })
                .await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().is_ok(), i % 10 != 0);
    }
    let keys = store
        .read(|r| {
            let mut keys = Vec::new();
            r.scan(T, &Range::all(), Dir::Asc, &mut |k, _| {
                keys.push(u32::from_be_bytes(k.try_into().unwrap()));
                Ok(ControlFlow::Continue(()))
            })?;
            Ok::<_, E>(keys)
        })
        .await
        .unwrap();
    let expected: Vec<u32> = (0..100).filter(|i| i % 10 != 0).collect();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn a_panicking_request_is_answered_and_the_writer_survives() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r: Result<(), E> = store
        .write(now(), Actor::system("t"), |ctx| {
            ctx.put(T, b"half", b"done")?;
            #[allow(clippy::panic)]
            {
                panic!("boom")
            }
        })
        .await;
    assert!(
        matches!(r, Err(E::Store(ref m)) if m.contains("rolled back")),
        "{r:?}"
    );
    put(&store, "after", "ok").await.unwrap();
    assert_eq!(get(&store, "half").await, None);
    assert_eq!(get(&store, "after").await, Some(b"ok".to_vec()));
}

#[tokio::test]
async fn a_panicking_commit_observer_does_not_turn_committed_writes_into_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = calls.clone();
    store.on_commit(Arc::new(move |_| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            #[allow(clippy::panic)]
            {
                panic!("observer bug")
            }
        }
    }));
    // The write committed durably before the observer ran: its caller is told so.
    assert_eq!(put(&store, "first", "v").await, Ok(()));
    assert_eq!(put(&store, "second", "v").await, Ok(()));
    assert_eq!(get(&store, "first").await, Some(b"v".to_vec()));
    assert_eq!(get(&store, "second").await, Some(b"v".to_vec()));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// A backend whose next write panics once armed, as a bug below the writer (in redb or the
/// file layer) would: the panic unwinds through `commit`, outside any request.
#[derive(Debug)]
struct PanickingBackend {
    inner: redb::backends::FileBackend,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl redb::StorageBackend for PanickingBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            #[allow(clippy::panic)]
            {
                panic!("injected panic below the writer")
            }
        }
        self.inner.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }
}

const WRITER_DEATH_CHILD: &str = "TENANTRY_TEST_WRITER_DEATH_CHILD";

#[test]
fn a_writer_that_dies_ends_the_process_instead_of_answering_closed_forever() {
    if std::env::var_os(WRITER_DEATH_CHILD).is_some() {
        // The child: a panic below the writer must stop this process before any caller is
        // answered (it cannot know whether the commit happened).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(DATA_FILE);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap();
            let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let backend = PanickingBackend {
                inner: redb::backends::FileBackend::new(file).unwrap(),
                armed: armed.clone(),
            };
            let store = Store::open_with_backend(path, backend).unwrap();
            armed.store(true, std::sync::atomic::Ordering::SeqCst);
            let first = put(&store, "k", "v").await;
            let second = put(&store, "k2", "v").await;
            println!("ANSWERED {first:?} {second:?}");
        });
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "store::tests::a_writer_that_dies_ends_the_process_instead_of_answering_closed_forever",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_DEATH_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("ANSWERED"),
        "callers were answered after the writer died:\n{stdout}"
    );
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(6), "aborted: {stderr}");
    }
    assert!(stderr.contains("the writer thread died"), "{stderr}");
}

#[tokio::test]
async fn writes_survive_a_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    put(&store, "k", "v").await.unwrap();
    store.close().await;
    assert!(matches!(put(&store, "k2", "v").await, Err(E::Store(m)) if m.contains("closed")));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(get(&store, "k").await, Some(b"v".to_vec()));
}

#[tokio::test]
async fn close_releases_the_file_even_while_clones_of_the_handle_live() {
    // A server's connection tasks may drop their clone a moment after it stopped; a restart in
    // the same process must not find the file locked by them.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lingering = store.clone();
    put(&store, "k", "v").await.unwrap();
    store.close().await;
    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(get(&reopened, "k").await, Some(b"v".to_vec()));
    let read = lingering.read(|r| r.get(T, b"k").map_err(E::from)).await;
    assert!(matches!(read, Err(E::Store(m)) if m.contains("closed")));
    drop((store, lingering));
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("admin socket"), "{err}");
}

#[tokio::test]
async fn a_data_file_from_a_newer_schema_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .write(now(), Actor::system("t"), |ctx| {
            meta_put(ctx, "schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1));
    assert!(err.to_string().contains("upgrade tenantry"), "{err}");
}

#[tokio::test]
async fn a_table_never_written_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (v, n) = store
        .read(|r| Ok::<_, Error>((r.get(Table::new("nope"), b"k")?, r.len(Table::new("nope"))?)))
        .await
        .unwrap();
    assert_eq!((v, n), (None, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_leaves_no_table_behind_even_beside_a_committing_neighbour() {
    // A refusal reads before it refuses; the read must not create the tables it looked at,
    // neither alone in its batch nor in a batch that commits a neighbour's write.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before = store.table_names().await.unwrap();
    let refuse = |name: &'static str| {
        let store = store.clone();
        async move {
            store
                .write(now(), Actor::system("t"), move |ctx| {
                    let t = Table::new(name);
                    let _ = ctx.get(t, b"k")?;
                    let _ = ctx.len(t)?;
                    ctx.scan(t, &Range::all(), Dir::Asc, &mut |_, _| {
                        Ok(ControlFlow::Continue(()))
                    })?;
                    Err::<(), E>(E::Refused)
                })
                .await
        }
    };
    assert_eq!(refuse("looked_at_alone").await, Err(E::Refused));
    assert_eq!(store.table_names().await.unwrap(), before);
    let (refused, committed) = tokio::join!(refuse("looked_at_in_a_batch"), put(&store, "k", "v"));
    assert_eq!(refused, Err(E::Refused));
    committed.unwrap();
    let mut expected = before.clone();
    expected.push(T.name().to_string());
    expected.sort();
    assert_eq!(store.table_names().await.unwrap(), expected);
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_file_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let store = Store::open(&data).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(store.path()), 0o600);
}

/// A file backend that fails every write and sync once its countdown runs out, like a disk
/// that fills up or goes away mid-commit.
#[derive(Debug)]
struct FailingBackend {
    inner: redb::backends::FileBackend,
    writes_left: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl FailingBackend {
    fn tick(&self) -> std::io::Result<()> {
        if self
            .writes_left
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            <= 0
        {
            return Err(std::io::Error::other(
                "injected failure: no space left on device",
            ));
        }
        Ok(())
    }
}

impl redb::StorageBackend for FailingBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.tick()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.tick()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.tick()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_commit_and_a_reopen_the_chain_verifies_and_nothing_acknowledged_is_missing()
{
    use crate::audit::signing::{InstallKey, KeyRing};
    use crate::audit::verify::{Mode, verify_chain};
    use crate::audit::{ChainId, Target, ledger};

    let ring = KeyRing::new([InstallKey::from_seed(&[3; 32]).public()]);
    for countdown in [5i64, 17, 40, 90, 200, 500] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATA_FILE);
        let chain = ChainId::Tenant(uuid::Uuid::now_v7());
        let mut acknowledged = 0u64;
        {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap();
            let writes_left = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
            let backend = FailingBackend {
                inner: redb::backends::FileBackend::new(file).unwrap(),
                writes_left: writes_left.clone(),
            };
            let store = Store::open_with_backend(path.clone(), backend).unwrap();
            writes_left.store(countdown, std::sync::atomic::Ordering::SeqCst);
            for i in 0..400u64 {
                let r = store
                    .write(now(), Actor::system("t"), move |ctx| {
                        let data = serde_json::json!({"i": i, "reason": "crash test"});
                        ledger::append(
                            ctx,
                            &chain,
                            "tenant.updated.v1",
                            &Target::new("tenant", i),
                            data,
                        )
                    })
                    .await;
                match r {
                    Ok(a) => {
                        assert_eq!(a.seq, acknowledged + 1, "seqs are acknowledged in order");
                        acknowledged = a.seq;
                    }
                    Err(_) => break,
                }
            }
            store.close().await;
        }
        assert!(
            acknowledged < 400,
            "countdown {countdown}: the injected failure was never hit"
        );
        eprintln!("countdown {countdown}: {acknowledged} appends acknowledged before the failure");
        let store = Store::open(dir.path()).unwrap();
        let ring = ring.clone();
        let report = store
            .read(move |r| verify_chain(r, &chain, &ring, Mode::Full))
            .await
            .unwrap_or_else(|e: crate::error::Error| panic!("countdown {countdown}: {e}"));
        assert!(report.ok, "countdown {countdown}: {report:?}");
        assert!(
            report.head_seq >= acknowledged,
            "countdown {countdown}: acknowledged {acknowledged} but the head is {}",
            report.head_seq
        );
        // And the store takes writes again.
        let next = store
            .write(now(), Actor::system("t"), move |ctx| {
                ledger::append(
                    ctx,
                    &chain,
                    "tenant.updated.v1",
                    &Target::new("tenant", "x"),
                    serde_json::json!({}),
                )
            })
            .await
            .unwrap();
        assert_eq!(next.seq, report.head_seq + 1);
    }
}
