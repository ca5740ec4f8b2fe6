//! Databases for tests: a fresh PostgreSQL database per test on the shared server, an
//! SQLite file per test, and a private PostgreSQL server a test may stop and start.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// Admin URL of the shared server (`TEST_POSTGRES_URL` overrides it).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database created for one test and dropped when it ends.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    name: Option<String>,
    _dir: Option<tempfile_dir::TempDir>,
}

impl TestDatabase {
    /// A fresh PostgreSQL database on the shared server.
    pub async fn postgres() -> Self {
        let name = format!(
            "hwtest_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = Database::connect(postgres_admin_url())
            .await
            .expect("shared PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let _ = admin.close().await;
        let base = postgres_admin_url();
        let url = format!(
            "{}/{name}",
            base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b)
        );
        Self {
            url,
            name: Some(name),
            _dir: None,
        }
    }

    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile_dir::TempDir::new();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path.join("hookwire.sqlite").display()
        );
        Self {
            url,
            name: None,
            _dir: Some(dir),
        }
    }

    pub async fn connect(&self) -> DatabaseConnection {
        shared::db::connect(&self.url, 4).await.unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else { return };
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(admin) = Database::connect(postgres_admin_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Minimal temporary directory (removed on drop), to avoid a dependency for it.
pub mod tempfile_dir {
    use std::path::PathBuf;

    #[derive(Debug)]
    pub struct TempDir {
        pub path: PathBuf,
    }

    impl TempDir {
        pub fn new() -> Self {
            let path = std::env::temp_dir()
                .join(format!("hookwire-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path).unwrap();
            Self { path }
        }
    }

    impl Default for TempDir {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A PostgreSQL server of the test's own, on a free port, that the test may stop and
/// start. Never the shared one.
#[derive(Debug)]
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL installed")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb present");
        let dir =
            std::env::temp_dir().join(format!("hookwire-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        run("chown", &["postgres", dir.to_str().unwrap()]);
        run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &format!("{}/data", dir.display()),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        );
        let server = Self {
            port: crate::process::free_port(),
            dir,
            bin,
        };
        server.resume();
        server
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &format!("{}/data", self.dir.display()),
                "-w",
                "-m",
                "fast",
                "stop",
            ],
        );
    }

    /// Starts it again with the same data.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &format!("{}/data", self.dir.display()),
                "-o",
                &options,
                "-l",
                &format!("{}/pg.log", self.dir.display()),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                &format!("{}/data", self.dir.display()),
                "-w",
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_as_postgres(program: &std::path::Path, args: &[&str]) {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until `url` accepts connections.
pub async fn wait_reachable(url: &str) {
    crate::eventually("database reachable", Duration::from_secs(30), || async {
        Database::connect(url).await.ok().map(|_| ())
    })
    .await;
}
