//! A simulated power cut for the durability tests (issue #24): `powercut_fs.py` (beside this
//! file, Python over Debian's `python3-fusepy`) mounts a directory through FUSE and keeps every
//! write in its own memory until the writer syncs the file. Killing it with SIGKILL drops
//! whatever was never synced, as a power cut would, and leaves the backing directory holding
//! exactly what a disk would. Test-only; needs root (or FUSE rights) and `/dev/fuse`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's interpreter: `python3-fusepy` installs into its dist-packages only.
const PYTHON: &str = "/usr/bin/python3";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/powercut_fs.py")
}

/// Why a power cut cannot be simulated here, if it cannot.
pub fn missing() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse on this machine".into());
    }
    let fusepy = Command::new(PYTHON)
        .args(["-c", "import fusepy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !fusepy.is_ok_and(|status| status.success()) {
        return Some("python3-fusepy is not installed (apt-get install python3-fusepy)".into());
    }
    let unmount = Command::new("fusermount")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !unmount.is_ok_and(|status| status.success()) {
        return Some("fusermount is not installed (apt-get install fuse3)".into());
    }
    None
}

/// `backing` mounted at `mount` through the power-cut filesystem.
pub struct PowerCutFs {
    daemon: Option<Child>,
    pub backing: PathBuf,
    pub mount: PathBuf,
}

impl PowerCutFs {
    pub fn mount(backing: &Path, mount: &Path) -> PowerCutFs {
        std::fs::create_dir_all(backing).expect("backing dir");
        std::fs::create_dir_all(mount).expect("mount point");
        let daemon = Command::new(PYTHON)
            .arg(script())
            .arg(backing)
            .arg(mount)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start powercut_fs.py");
        let fs = PowerCutFs {
            daemon: Some(daemon),
            backing: backing.to_path_buf(),
            mount: mount.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !fs.mounted() {
            assert!(Instant::now() < deadline, "powercut_fs.py did not mount");
            std::thread::sleep(Duration::from_millis(20));
        }
        fs
    }

    fn mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let target = self.mount.to_string_lossy();
        mounts
            .lines()
            .any(|line| line.split_whitespace().nth(1) == Some(target.as_ref()))
    }

    /// The power cut: the filesystem dies with everything that was never synced, and the
    /// mount goes. Kill the programs writing to it first (they die with the power too).
    pub fn cut(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        if self.mounted() {
            let _ = Command::new("fusermount")
                .args(["-u", "-z"])
                .arg(&self.mount)
                .stderr(Stdio::null())
                .status();
        }
        if self.mounted() {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        self.stop();
    }
}
