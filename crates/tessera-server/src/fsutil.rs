//! Files and folders holding secrets: the data folder (0700), the master key, the SQLite
//! database and the demo password (0600). SQLite gives its `-wal` and `-shm` files the
//! mode of the database file, so a database made here keeps them 0600 too.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a new file readable only by its owner (0600 on Unix).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = private_options().open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn private_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Creates an empty file readable only by its owner unless `path` exists; true if it
/// made it. (An empty file is an empty SQLite database.)
pub fn create_private_file(path: &Path) -> std::io::Result<bool> {
    match private_options().open(path) {
        Ok(f) => {
            f.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates the folder `path` (and missing parents) readable only by its owner (0700 on
/// Unix) unless it exists; true if it made it. An existing folder is left as it is.
pub fn create_private_dir(path: &Path) -> std::io::Result<bool> {
    if path.is_dir() {
        return Ok(false);
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_and_folders() {
        let root = std::env::temp_dir().join(format!(
            "tessera-fsutil-{}-{}",
            std::process::id(),
            tessera_core::b64::encode(tessera_core::random_bytes::<6>())
        ));
        let dir = root.join("a/b");
        assert!(create_private_dir(&dir).unwrap());
        assert!(!create_private_dir(&dir).unwrap());
        let file = dir.join("db");
        assert!(create_private_file(&file).unwrap());
        assert!(!create_private_file(&file).unwrap());
        assert_eq!(std::fs::read(&file).unwrap(), b"");
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&root.join("a")), 0o700);
            assert_eq!(mode(&file), 0o600);
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
