//! A PostgreSQL server of its own in a temporary directory, on a 127.0.0.1 port the OS picks:
//! what the connector's tests, its benchmarks and the demo run against. It uses the server
//! programs of Debian's `postgresql` package (found on `PATH` or in
//! `/usr/lib/postgresql/VERSION/bin`), never a download. As root, the server runs as the
//! `postgres` system user, as PostgreSQL requires.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a local server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The server programs are not installed.
    #[error(
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: install Debian's postgresql package (apt-get install postgresql; .ci/run does)"
    )]
    NotInstalled,
    /// A program failed.
    #[error("{program} failed: {output}")]
    Failed {
        /// The program.
        program: String,
        /// What it printed.
        output: String,
    },
    /// Files or processes.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running server; stopped (immediately) and removed when dropped.
pub struct LocalPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Run the programs as this user (root cannot run PostgreSQL).
    user: Option<String>,
    port: u16,
}

/// The directory of `initdb` and `pg_ctl`: on `PATH`, else the newest under
/// `/usr/lib/postgresql`.
fn server_bin() -> Result<PathBuf, PostgresError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.path().join("bin")))
                .filter(|bin| bin.join("pg_ctl").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    if let Some(bin) = found.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .find(|dir| dir.join("pg_ctl").exists() && dir.join("initdb").exists())
        })
        .ok_or(PostgresError::NotInstalled)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl LocalPostgres {
    /// Creates a cluster with a `tierlink` superuser (trust authentication, loopback only) and
    /// starts it.
    ///
    /// # Errors
    /// [`PostgresError::NotInstalled`] without the server programs; a program's failure.
    pub fn start() -> Result<Self, PostgresError> {
        let bin = server_bin()?;
        let dir = tempfile::Builder::new().prefix("tierlink-pg").tempdir()?;
        let user = is_root().then(|| "postgres".to_owned());
        if user.is_some() {
            // The server's user owns its directory.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            if !status.success() {
                return Err(PostgresError::Failed {
                    program: "chown".into(),
                    output: "cannot give the postgres user the data directory".into(),
                });
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let server = Self {
            bin,
            dir,
            user,
            port,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "tierlink",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        server.start_again()?;
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), PostgresError> {
        let path = self.bin.join(program);
        let mut command = match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let output = command.args(args).current_dir(self.dir.path()).output()?;
        if !output.status.success() {
            return Err(PostgresError::Failed {
                program: program.into(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        Ok(())
    }

    /// Starts the server after [`LocalPostgres::stop`] (or a crash), on the same port and data.
    pub fn start_again(&self) -> Result<(), PostgresError> {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=50",
            self.port,
            path_str(self.dir.path())
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
    }

    /// Stops the server: `fast` lets sessions end cleanly, otherwise it stops at once, as a crash
    /// would (recovery runs at the next start).
    pub fn stop(&self, fast: bool) -> Result<(), PostgresError> {
        let mode = if fast { "fast" } else { "immediate" };
        self.run(
            "pg_ctl",
            &["-D", path_str(&self.data()), "-m", mode, "-w", "stop"],
        )
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection string for the `tierlink` superuser and database `postgres`.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=tierlink dbname=postgres",
            self.port
        )
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        let _ = self.stop(false);
    }
}
