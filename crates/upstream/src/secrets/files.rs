//! Owner-only files: the data directory (0700), and what is in it (0600): the SQLite
//! files, the lock, the node id and the generated secret key.

use std::io;
use std::path::Path;

/// Makes a directory accessible to its owner only (0700). A no-op off unix.
pub fn secure_dir(path: &Path) -> io::Result<()> {
    set_mode(path, 0o700)
}

/// Makes a file readable and writable by its owner only (0600). A missing file is not an
/// error (SQLite creates `-wal` and `-shm` files later, with the database file's mode).
/// A no-op off unix.
pub fn secure_file(path: &Path) -> io::Result<()> {
    match set_mode(path, 0o600) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Whether others than the owner may read the file (a warning for key files).
#[cfg(unix)]
pub(crate) fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
pub(crate) fn readable_by_others(_path: &Path) -> bool {
    false
}

/// Writes a new file readable by its owner only; fails if it exists.
pub(crate) fn create_private(path: &Path, contents: &str) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    // The mode given at creation is masked by the umask, which only removes bits; say it
    // again so that the file is 0600 whatever the umask.
    secure_file(path)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn owner_only_modes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        secure_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        let db = data.join("baton.db");
        std::fs::write(&db, "x").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(readable_by_others(&db));
        secure_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert!(!readable_by_others(&db));
        secure_file(&data.join("baton.db-wal")).unwrap();
        assert!(secure_dir(&data.join("missing")).is_err());
        let key = data.join("secret.key");
        create_private(&key, "k").unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(
            create_private(&key, "again").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "k");
    }
}
