//! The lab's data: an SQLite database generated from a seed, a bounded
//! connection pool in front of it, and an optional lagging replica.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{Metrics, PoolName};

/// Every generated user's password. A lab, not a bank.
pub const PASSWORD: &str = "password";

/// How many funds the site has; fund 1 is featured, fund 2 is the other
/// tenant's.
pub const FUNDS: i64 = 200;

/// Lessons behind `/learn/{id}`.
pub const LESSONS: i64 = 50;

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No pooled connection came free within the wait.
    #[error("too many connections")]
    Exhausted,
    /// SQLite said no.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The blocking task running the query panicked or was cancelled.
    #[error("database connection lost")]
    Lost,
}

/// A password hash: FNV-1a over a salted password. Real sites use a slow
/// hash; the lab's costs are elsewhere on purpose.
pub fn pass_hash(password: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"lab-salt:".iter().chain(password.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// The email of generated user `id`.
pub fn email(id: i64) -> String {
    format!("user{id}@example.com")
}

const FIRST: [&str; 16] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Dennis",
    "Frances",
    "Leslie",
    "Radia",
    "Donald",
    "Margaret",
    "John",
    "Katherine",
    "Niklaus",
    "Sophie",
];
const LAST: [&str; 16] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Ritchie", "Allen",
    "Lamport", "Perlman", "Knuth", "Hamilton", "Backus", "Johnson", "Wirth", "Wilson",
];
const ADJ: [&str; 8] = [
    "Open", "Secure", "Faster", "Local", "Public", "Free", "Green", "Better",
];
const NOUN: [&str; 8] = [
    "Library", "Compiler", "Garden", "Bridge", "Archive", "Radio", "Clinic", "Map",
];

/// The featured fund's title, which the home page must show.
pub const FEATURED_TITLE: &str = "Audit the TrueCrypt source";
/// The other tenant's fund, shown by mistake under `--misroute`.
pub const OTHER_TITLE: &str = "Bay to Breakers bounty";

/// Creates and fills the database at `path`: `users` users, the funds,
/// their pledges and the lessons, all from `seed`.
pub fn generate(path: &Path, users: u32, seed: u64) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT NOT NULL,
                             pass_hash INTEGER NOT NULL, motto TEXT NOT NULL DEFAULT '');
         CREATE UNIQUE INDEX users_email ON users(email);
         CREATE TABLE funds (id INTEGER PRIMARY KEY, title TEXT NOT NULL, summary TEXT NOT NULL,
                             goal INTEGER NOT NULL, raised INTEGER NOT NULL, backers INTEGER NOT NULL);
         CREATE INDEX funds_raised ON funds(raised);
         CREATE TABLE pledges (id INTEGER PRIMARY KEY, fund_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
                               amount INTEGER NOT NULL, note TEXT NOT NULL);
         CREATE INDEX pledges_fund ON pledges(fund_id);
         CREATE TABLE lessons (id INTEGER PRIMARY KEY, fund_id INTEGER NOT NULL, title TEXT NOT NULL,
                               body TEXT NOT NULL);
         CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let users = i64::from(users.max(1));
    let tx = conn.transaction()?;
    {
        let hash = pass_hash(PASSWORD);
        let mut insert = tx.prepare(
            "INSERT INTO users (id, email, name, pass_hash, motto) VALUES (?1, ?2, ?3, ?4, '')",
        )?;
        for id in 1..=users {
            let name = format!(
                "{} {}",
                FIRST[rng.usize(..FIRST.len())],
                LAST[rng.usize(..LAST.len())]
            );
            insert.execute(params![id, email(id), name, hash])?;
        }
        let mut fund = tx.prepare("INSERT INTO funds (id, title, summary, goal, raised, backers) VALUES (?1, ?2, ?3, ?4, 0, 0)")?;
        let mut pledge = tx.prepare(
            "INSERT INTO pledges (fund_id, user_id, amount, note) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for id in 1..=FUNDS {
            let title = match id {
                1 => FEATURED_TITLE.to_string(),
                2 => OTHER_TITLE.to_string(),
                _ => format!(
                    "{} {} {id}",
                    ADJ[rng.usize(..ADJ.len())],
                    NOUN[rng.usize(..NOUN.len())]
                ),
            };
            let summary = format!("Fund {id}: {title}, raising money for a good cause.");
            fund.execute(params![id, title, summary, rng.i64(1_000..100_000)])?;
            for _ in 0..rng.i64(10..40) {
                pledge.execute(params![
                    id,
                    rng.i64(1..=users),
                    rng.i64(5..500),
                    "Good luck!"
                ])?;
            }
        }
        tx.execute_batch(
            "UPDATE funds SET raised = (SELECT COALESCE(SUM(amount), 0) FROM pledges WHERE fund_id = funds.id),
                              backers = (SELECT COUNT(*) FROM pledges WHERE fund_id = funds.id);",
        )?;
        let mut lesson =
            tx.prepare("INSERT INTO lessons (id, fund_id, title, body) VALUES (?1, ?2, ?3, ?4)")?;
        for id in 1..=LESSONS {
            let body = "Auditing code means reading it slowly, twice. ".repeat(20);
            lesson.execute(params![
                id,
                rng.i64(1..=FUNDS),
                format!("Lesson {id}"),
                body
            ])?;
        }
        tx.execute(
            "INSERT INTO settings (key, value) VALUES ('featured_fund', '1')",
            [],
        )?;
    }
    tx.commit()?;
    conn.execute_batch("ANALYZE;")?;
    Ok(())
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    Ok(conn)
}

/// A bounded pool of connections to one database file. A request holds a
/// connection from its first query to its response, as web frameworks do.
pub struct Pool {
    name: PoolName,
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    wait: Duration,
    metrics: Arc<Metrics>,
}

impl Pool {
    /// A pool of at most `size` connections to `path`, opened as needed.
    pub fn new(
        name: PoolName,
        path: PathBuf,
        size: usize,
        wait: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Pool> {
        metrics.pools[name as usize]
            .size
            .store(size.max(1) as u64, Ordering::Relaxed);
        Arc::new(Pool {
            name,
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            wait,
            metrics,
        })
    }

    /// A connection, or `Exhausted` when none came free within the wait.
    pub async fn get(self: &Arc<Self>) -> Result<Pooled, DbError> {
        let started = Instant::now();
        let gauges = &self.metrics.pools[self.name as usize];
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                gauges.waited(started.elapsed());
                self.metrics.add(&self.metrics.db_pool_timeouts, 1);
                DbError::Exhausted
            })?
            .map_err(|_| DbError::Lost)?;
        gauges.waited(started.elapsed());
        self.metrics.add(
            &self.metrics.db_pool_wait_us,
            started.elapsed().as_micros() as u64,
        );

        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(c) => c,
            None => open(&self.path)?,
        };
        gauges.in_use.fetch_add(1, Ordering::Relaxed);
        Ok(Pooled {
            conn: Some(conn),
            pool: self.clone(),
            _permit: permit,
        })
    }
}

/// A connection taken from a pool; it goes back when dropped.
pub struct Pooled {
    conn: Option<Connection>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Pooled {
    /// Runs `f` on the connection on the blocking thread pool: SQLite calls
    /// block, and must not stall the server's other requests.
    pub async fn run<T, F>(&mut self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let mut conn = self.conn.take().ok_or(DbError::Lost)?;
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut conn);
            (conn, out)
        })
        .await
        .map_err(|_| DbError::Lost)?;
        self.conn = Some(conn);
        Ok(out?)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.metrics.pools[self.pool.name as usize]
            .in_use
            .fetch_sub(1, Ordering::Relaxed);
        if let Some(conn) = self.conn.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(conn);
        }
    }
}

/// A change to the data, applied to the primary and, later, to the replica
/// (statement-based replication).
#[derive(Clone, Debug)]
pub enum Write {
    /// A user's motto changed.
    Motto {
        /// The user.
        user: i64,
        /// The new motto.
        motto: String,
    },
    /// A pledge was made.
    Pledge {
        /// The pledge's id, as the primary assigned it.
        id: i64,
        /// The fund.
        fund: i64,
        /// The user.
        user: i64,
        /// The amount.
        amount: i64,
    },
}

impl Write {
    /// Applies the change; for a pledge without an id yet (`id == 0`) the
    /// database assigns one, which is returned.
    pub fn apply(&self, conn: &mut Connection) -> rusqlite::Result<i64> {
        match self {
            Write::Motto { user, motto } => {
                conn.prepare_cached("UPDATE users SET motto = ?1 WHERE id = ?2")?
                    .execute(params![motto, user])?;
                Ok(*user)
            }
            Write::Pledge {
                id,
                fund,
                user,
                amount,
            } => {
                let tx = conn.transaction()?;
                tx.prepare_cached(
                    "INSERT INTO pledges (id, fund_id, user_id, amount, note) VALUES (NULLIF(?1, 0), ?2, ?3, ?4, 'Pledged in the lab')",
                )?
                .execute(params![id, fund, user, amount])?;
                let id = tx.last_insert_rowid();
                tx.prepare_cached(
                    "UPDATE funds SET raised = raised + ?1, backers = backers + 1 WHERE id = ?2",
                )?
                .execute(params![amount, fund])?;
                tx.commit()?;
                Ok(id)
            }
        }
    }
}

/// Ships writes to the replica, which applies each one `lag` after the
/// primary did, on a thread of its own.
pub struct Replication {
    tx: Mutex<mpsc::Sender<(Instant, Write)>>,
    lag: Duration,
    metrics: Arc<Metrics>,
}

impl Replication {
    /// Starts applying writes to the database at `path`.
    pub fn start(
        path: &Path,
        lag: Duration,
        apply: Duration,
        metrics: Arc<Metrics>,
    ) -> rusqlite::Result<Replication> {
        let mut conn = open(path)?;
        let (tx, rx) = mpsc::channel::<(Instant, Write)>();
        metrics.replicated.store(true, Ordering::Relaxed);
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("lab-replica".into())
            .spawn(move || {
                for (due, write) in rx {
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    // A write the replica cannot apply is lost, as it would
                    // be with a broken replication stream.
                    let _ = write.apply(&mut conn);
                    // A slow replica's disk: writes queue up behind it.
                    if !apply.is_zero() {
                        std::thread::sleep(apply);
                    }
                    m.replica_pending
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .pop_front();
                }
            })
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Replication {
            tx: Mutex::new(tx),
            lag,
            metrics,
        })
    }

    /// Queues a write the primary has applied.
    pub fn ship(&self, write: Write) {
        let now = Instant::now();
        let due = now + self.lag;
        self.metrics
            .replica_pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(now);
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send((due, write));
    }
}

/// The database as the handlers see it: the primary, and where reads go.
pub struct Db {
    /// Writes, and reads when there is no replica.
    pub primary: Arc<Pool>,
    /// Reads behind a lagging replica (`--replica-lag`).
    pub replica: Option<(Arc<Pool>, Replication)>,
    /// Keeps the files; removed when the lab stops.
    _dir: tempfile::TempDir,
}

impl Db {
    /// Generates the data in a temporary directory and opens the pools.
    pub fn create(config: &crate::Config, metrics: Arc<Metrics>) -> rusqlite::Result<Db> {
        let dir = tempfile::Builder::new()
            .prefix("throng-lab-")
            .tempdir()
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let path = dir.path().join("primary.db");
        generate(&path, config.users, config.seed)?;
        let size = config.db_pool.unwrap_or(64);
        let primary = Pool::new(
            PoolName::Primary,
            path.clone(),
            size,
            config.db_wait,
            metrics.clone(),
        );
        let replica = match config.replica_lag {
            Some(lag) => {
                let rpath = dir.path().join("replica.db");
                let conn = open(&path)?;
                conn.execute("VACUUM INTO ?1", [rpath.to_string_lossy()])?;
                drop(conn);
                let replication =
                    Replication::start(&rpath, lag, config.replica_apply, metrics.clone())?;
                let pool = Pool::new(PoolName::Replica, rpath, size, config.db_wait, metrics);
                Some((pool, replication))
            }
            None => None,
        };
        Ok(Db {
            primary,
            replica,
            _dir: dir,
        })
    }

    /// The pool reads go to.
    pub fn reads(&self) -> &Arc<Pool> {
        self.replica.as_ref().map_or(&self.primary, |(p, _)| p)
    }

    /// Applies a write on the primary and ships it to the replica.
    pub async fn write(&self, conn: &mut Pooled, write: Write) -> Result<i64, DbError> {
        let w = write.clone();
        let id = conn.run(move |c| w.apply(c)).await?;
        if let Some((_, replication)) = &self.replica {
            let shipped = match write {
                Write::Pledge {
                    fund, user, amount, ..
                } => Write::Pledge {
                    id,
                    fund,
                    user,
                    amount,
                },
                w => w,
            };
            replication.ship(shipped);
        }
        Ok(id)
    }
}

/// A user row, for login and the profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// The field `/profile` reads and writes.
    pub motto: String,
}

/// Looks a user up for login: by the unique index, or (`scan`) by a
/// case-insensitive pattern match that SQLite can only answer by reading
/// every row (incident I11). Returns the user and their password hash.
pub fn find_login(
    conn: &mut Connection,
    email: &str,
    scan: bool,
) -> rusqlite::Result<Option<(i64, i64, String)>> {
    let sql = if scan {
        // LIKE is case-insensitive; the email index is not, so this reads
        // every row, and all of them, since every match is fetched to make
        // sure there is only one (as ORMs' `get` does).
        "SELECT id, pass_hash, name FROM users WHERE email LIKE ?1"
    } else {
        "SELECT id, pass_hash, name FROM users WHERE email = ?1"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map([email], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().next())
}

/// A user by id.
pub fn user(conn: &mut Connection, id: i64) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached("SELECT id, email, name, motto FROM users WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(User {
                id: r.get(0)?,
                email: r.get(1)?,
                name: r.get(2)?,
                motto: r.get(3)?,
            })
        })
        .optional()
}
