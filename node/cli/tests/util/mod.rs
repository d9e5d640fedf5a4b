//! What the command's end-to-end tests share: running `tierlink`, and nodes on loopback ports.
// Each test binary uses a part of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tierlink");

pub fn tierlink(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TIERLINK_NODE")
        .output()
        .expect("run tierlink")
}

pub fn ok(args: &[&str]) -> String {
    let out = tierlink(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tierlink {args:?} failed:\n{text}");
    text
}

pub fn fails(args: &[&str]) -> String {
    let out = tierlink(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "tierlink {args:?} should fail");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

/// A loopback port the OS considers free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schema/examples")
        .join(name)
}

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tierlink serve` and waits until it answers.
pub fn serve(node: &Path) -> Server {
    let child = Command::new(BIN)
        .args(["serve", "--node", node.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tierlink(&["catalog", "list", "--node", node.to_str().unwrap()])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "node in {} did not start",
            node.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// `tierlink init` for one unit listening on a free loopback port; returns its directory.
pub fn init_unit(root: &Path, code: &str, tier: &str, parent: Option<&str>) -> String {
    let dir = root.join(code).to_str().unwrap().to_owned();
    let listen = format!("127.0.0.1:{}", free_port());
    let ca = root.join("ca").to_str().unwrap().to_owned();
    let mut args = vec![
        "init", "--dir", &dir, "--code", code, "--tier", tier, "--name", code, "--listen", &listen,
        "--ca", &ca,
    ];
    if let Some(p) = parent {
        args.extend(["--parent", p]);
    }
    ok(&args);
    dir
}
