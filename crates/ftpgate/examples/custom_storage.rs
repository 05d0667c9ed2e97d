//! Your own `Storage`: an in-memory file tree, served over FTP. Everything an FTP client does
//! (directories, uploads that commit or abort, resume, renames, listings) works on it; it
//! passes the same behaviour suite as the local-disk and S3 backends
//! (`crates/ftpgate/tests/memory_storage.rs`). Run with
//! `cargo run -p ftpgate --example custom_storage`, log in with any name and the password
//! `memory`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use ftpgate::Server;
use ftpgate_core::{
    AuthError, Authenticator, DirEntry, EntryStream, FileKind, LoginRequest, Metadata, Permissions,
    ReadStream, Storage, StorageError, StorageErrorKind, StorageFactory, Upload, User, VirtualPath,
    WriteStart,
};

#[derive(Debug, Clone)]
enum Node {
    Dir {
        modified: SystemTime,
    },
    File {
        bytes: Arc<Vec<u8>>,
        modified: SystemTime,
    },
}

/// A file tree in memory. Keys are paths without the leading `/` ("" is the root).
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    tree: Arc<Mutex<BTreeMap<String, Node>>>,
}

fn error(kind: StorageErrorKind, what: &str) -> StorageError {
    StorageError::new(kind, what.to_string())
}

fn meta(node: &Node) -> Metadata {
    match node {
        Node::Dir { modified } => Metadata {
            kind: FileKind::Dir,
            size: 0,
            modified: Some(*modified),
            mode: None,
            unique: None,
        },
        Node::File { bytes, modified } => Metadata {
            kind: FileKind::File,
            size: bytes.len() as u64,
            modified: Some(*modified),
            mode: None,
            unique: None,
        },
    }
}

impl MemoryStorage {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Node>>, StorageError> {
        self.tree
            .lock()
            .map_err(|_| error(StorageErrorKind::Local, "tree lock poisoned"))
    }

    fn node(tree: &BTreeMap<String, Node>, path: &VirtualPath) -> Option<Node> {
        if path.is_root() {
            return Some(Node::Dir {
                modified: SystemTime::UNIX_EPOCH,
            });
        }
        tree.get(path.relative()).cloned()
    }

    fn require_dir(tree: &BTreeMap<String, Node>, path: &VirtualPath) -> Result<(), StorageError> {
        match Self::node(tree, path) {
            Some(Node::Dir { .. }) => Ok(()),
            Some(Node::File { .. }) => Err(error(StorageErrorKind::NotADirectory, path.as_str())),
            None => Err(error(StorageErrorKind::NotFound, path.as_str())),
        }
    }

    /// Keys beneath a directory key ("" for the root).
    fn beneath<'a>(
        tree: &'a BTreeMap<String, Node>,
        dir: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        tree.range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
    }
}

/// An upload: bytes are held aside and become the file only on commit.
struct MemoryUpload {
    storage: MemoryStorage,
    path: VirtualPath,
    bytes: Vec<u8>,
}

#[async_trait]
impl Upload for MemoryUpload {
    async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.bytes.extend_from_slice(data);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<u64, StorageError> {
        let mut tree = self.storage.lock()?;
        MemoryStorage::require_dir(&tree, &self.path.parent())?;
        let size = self.bytes.len() as u64;
        tree.insert(
            self.path.relative().to_string(),
            Node::File {
                bytes: Arc::new(self.bytes),
                modified: SystemTime::now(),
            },
        );
        Ok(size)
    }

    async fn abort(self: Box<Self>) {}

    fn name(&self) -> Option<&str> {
        self.path.file_name()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        let tree = self.lock()?;
        Self::node(&tree, path)
            .map(|n| meta(&n))
            .ok_or_else(|| error(StorageErrorKind::NotFound, path.as_str()))
    }

    async fn list(&self, path: &VirtualPath) -> Result<EntryStream, StorageError> {
        let tree = self.lock()?;
        Self::require_dir(&tree, path)?;
        let dir = path.relative();
        let entries: Vec<Result<DirEntry, StorageError>> = Self::beneath(&tree, dir)
            .filter_map(|(key, node)| {
                let name = key[if dir.is_empty() { 0 } else { dir.len() + 1 }..].to_string();
                (!name.contains('/')).then(|| {
                    Ok(DirEntry {
                        name,
                        metadata: meta(node),
                    })
                })
            })
            .collect();
        Ok(Box::pin(futures_util::stream::iter(entries)))
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> Result<ReadStream, StorageError> {
        let tree = self.lock()?;
        match Self::node(&tree, path) {
            Some(Node::File { bytes, .. }) => {
                let start = usize::try_from(offset)
                    .map_err(|_| error(StorageErrorKind::InvalidOffset, path.as_str()))?;
                let tail = bytes
                    .get(start..)
                    .ok_or_else(|| error(StorageErrorKind::InvalidOffset, path.as_str()))?;
                Ok(Box::new(std::io::Cursor::new(tail.to_vec())))
            }
            Some(Node::Dir { .. }) => Err(error(StorageErrorKind::IsADirectory, path.as_str())),
            None => Err(error(StorageErrorKind::NotFound, path.as_str())),
        }
    }

    async fn write(
        &self,
        path: &VirtualPath,
        start: WriteStart,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let tree = self.lock()?;
        Self::require_dir(&tree, &path.parent())?;
        let existing = match Self::node(&tree, path) {
            Some(Node::Dir { .. }) => {
                return Err(error(StorageErrorKind::IsADirectory, path.as_str()));
            }
            Some(Node::File { bytes, .. }) => bytes.to_vec(),
            None => Vec::new(),
        };
        let bytes = match start {
            WriteStart::Truncate => Vec::new(),
            WriteStart::Append => existing,
            WriteStart::At(offset) => {
                let keep = usize::try_from(offset)
                    .ok()
                    .filter(|&n| n <= existing.len());
                let keep =
                    keep.ok_or_else(|| error(StorageErrorKind::InvalidOffset, path.as_str()))?;
                existing[..keep].to_vec()
            }
        };
        Ok(Box::new(MemoryUpload {
            storage: self.clone(),
            path: path.clone(),
            bytes,
        }))
    }

    async fn write_unique(
        &self,
        dir: &VirtualPath,
        base: &str,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let name = {
            let tree = self.lock()?;
            (0..1000)
                .map(|n| {
                    if n == 0 {
                        base.to_string()
                    } else {
                        format!("{base}.{n}")
                    }
                })
                .find(|name| Self::node(&tree, &dir.join(name)).is_none())
                .ok_or_else(|| error(StorageErrorKind::AlreadyExists, "no free unique name"))?
        };
        self.write(&dir.join(&name), WriteStart::Truncate).await
    }

    async fn make_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let mut tree = self.lock()?;
        if Self::node(&tree, path).is_some() {
            return Err(error(StorageErrorKind::AlreadyExists, path.as_str()));
        }
        Self::require_dir(&tree, &path.parent())?;
        tree.insert(
            path.relative().to_string(),
            Node::Dir {
                modified: SystemTime::now(),
            },
        );
        Ok(())
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let mut tree = self.lock()?;
        Self::require_dir(&tree, path)?;
        if path.is_root() {
            return Err(error(StorageErrorKind::PermissionDenied, "/"));
        }
        if Self::beneath(&tree, path.relative()).next().is_some() {
            return Err(error(StorageErrorKind::DirectoryNotEmpty, path.as_str()));
        }
        tree.remove(path.relative());
        Ok(())
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let mut tree = self.lock()?;
        match Self::node(&tree, path) {
            Some(Node::File { .. }) => {
                tree.remove(path.relative());
                Ok(())
            }
            Some(Node::Dir { .. }) => Err(error(StorageErrorKind::IsADirectory, path.as_str())),
            None => Err(error(StorageErrorKind::NotFound, path.as_str())),
        }
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        let mut tree = self.lock()?;
        let node = Self::node(&tree, from)
            .ok_or_else(|| error(StorageErrorKind::NotFound, from.as_str()))?;
        Self::require_dir(&tree, &to.parent())?;
        if to.starts_with(from) {
            return Err(error(
                StorageErrorKind::InvalidName,
                "cannot move a directory into itself",
            ));
        }
        let moved: Vec<(String, Node)> = Self::beneath(&tree, from.relative())
            .map(|(k, n)| (k[from.relative().len()..].to_string(), n.clone()))
            .collect();
        for (rest, _) in &moved {
            tree.remove(&format!("{}{rest}", from.relative()));
        }
        tree.remove(from.relative());
        tree.insert(to.relative().to_string(), node);
        for (rest, n) in moved {
            tree.insert(format!("{}{rest}", to.relative()), n);
        }
        Ok(())
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), StorageError> {
        let mut tree = self.lock()?;
        match tree.get_mut(path.relative()) {
            Some(Node::File { modified, .. } | Node::Dir { modified }) => {
                *modified = time;
                Ok(())
            }
            None => Err(error(StorageErrorKind::NotFound, path.as_str())),
        }
    }
}

/// Every user sees the same tree.
struct SharedTree(MemoryStorage);

impl StorageFactory for SharedTree {
    fn open(&self, _user: &User) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(Arc::new(self.0.clone()))
    }
}

/// Any name, password `memory`.
struct AnyName;

#[async_trait]
impl Authenticator for AnyName {
    async fn authenticate(&self, request: &LoginRequest<'_>) -> Result<User, AuthError> {
        let username = request.username();
        if request.password().expose() != "memory" {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(User::new(username, "", Permissions::ALL))
    }
}

#[allow(dead_code)] // when this file is included by the storage suite test
fn main() -> std::io::Result<()> {
    println!("an in-memory tree on 127.0.0.1:2121; any user, password \"memory\"");
    Server::with_storage(Arc::new(SharedTree(MemoryStorage::default())))
        .authenticator(Arc::new(AnyName))
        .listen("127.0.0.1:2121")
        .serve_blocking()
}
