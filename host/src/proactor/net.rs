//! Sockets for the proactor: creation and import (TCP, UDP, Unix stream and
//! datagram), and the synchronous setup calls (bind, listen, options). Everything
//! that waits (accept, connect, recv, send, shutdown, close) is an [`Operation`].
//!
//! Sockets are non-blocking: the epoll driver relies on it (it tries a call and
//! waits for readiness on `EAGAIN`), and io_uring handles such sockets the same way
//! internally. [`Socket::import`] sets `O_NONBLOCK` on a descriptor made elsewhere.
//!
//! [`Operation`]: super::Operation

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

use rustix::net::{self as rn, AddressFamily, SocketAddrAny, SocketFlags, SocketType};

use super::error::{Error, Result};

fn sys_err(what: &'static str, e: rustix::io::Errno) -> Error {
    Error::Sys {
        what,
        errno: e.raw_os_error(),
    }
}

/// Which kind of socket to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// TCP over IPv4.
    TcpV4,
    /// TCP over IPv6.
    TcpV6,
    /// UDP over IPv4.
    UdpV4,
    /// UDP over IPv6.
    UdpV6,
    /// Unix-domain stream socket.
    UnixStream,
    /// Unix-domain datagram socket.
    UnixDatagram,
}

impl SocketKind {
    fn parts(self) -> (AddressFamily, SocketType) {
        match self {
            SocketKind::TcpV4 => (AddressFamily::INET, SocketType::STREAM),
            SocketKind::TcpV6 => (AddressFamily::INET6, SocketType::STREAM),
            SocketKind::UdpV4 => (AddressFamily::INET, SocketType::DGRAM),
            SocketKind::UdpV6 => (AddressFamily::INET6, SocketType::DGRAM),
            SocketKind::UnixStream => (AddressFamily::UNIX, SocketType::STREAM),
            SocketKind::UnixDatagram => (AddressFamily::UNIX, SocketType::DGRAM),
        }
    }
}

/// A socket address an operation can carry (IPv4, IPv6 or a Unix path).
#[derive(Clone)]
pub struct SockAddr(pub(crate) SocketAddrAny);

impl SockAddr {
    /// A Unix-domain address (a filesystem path).
    pub fn unix(path: impl AsRef<Path>) -> Result<SockAddr> {
        let a = rn::SocketAddrUnix::new(path.as_ref())
            .map_err(|_| Error::InvalidArgument("unix socket path too long or invalid"))?;
        Ok(SockAddr(a.into()))
    }

    /// The IP address and port, if this is an IP address.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        SocketAddr::try_from(self.0.clone()).ok()
    }

    /// The filesystem path, if this is a Unix-domain address bound to one.
    pub fn as_unix_path(&self) -> Option<std::path::PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        let u = rn::SocketAddrUnix::try_from(self.0.clone()).ok()?;
        let bytes = u.path_bytes()?;
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(a: SocketAddr) -> SockAddr {
        SockAddr(a.into())
    }
}

impl std::fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_inet() {
            Some(a) => write!(f, "SockAddr({a})"),
            None => f.write_str("SockAddr(unix)"),
        }
    }
}

/// A non-blocking, close-on-exec socket.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

impl Socket {
    /// Creates a socket of `kind`.
    pub fn new(kind: SocketKind) -> Result<Socket> {
        let (family, ty) = kind.parts();
        let fd = rn::socket_with(
            family,
            ty,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| sys_err("socket", e))?;
        Ok(Socket { fd })
    }

    /// Takes a socket made elsewhere (e.g. a `std::net::TcpStream` via `OwnedFd`) and
    /// makes it non-blocking.
    pub fn import(fd: OwnedFd) -> Result<Socket> {
        let fl = rustix::fs::fcntl_getfl(&fd).map_err(|e| sys_err("fcntl(F_GETFL)", e))?;
        rustix::fs::fcntl_setfl(&fd, fl | rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| sys_err("fcntl(F_SETFL)", e))?;
        Ok(Socket { fd })
    }

    /// A connected pair of Unix stream (or datagram) sockets.
    pub fn pair(kind: SocketKind) -> Result<(Socket, Socket)> {
        let (family, ty) = kind.parts();
        if family != AddressFamily::UNIX {
            return Err(Error::InvalidArgument("socket pairs are Unix-domain only"));
        }
        let (a, b) = rn::socketpair(
            family,
            ty,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| sys_err("socketpair", e))?;
        Ok((Socket { fd: a }, Socket { fd: b }))
    }

    /// Binds to `addr` (with `SO_REUSEADDR` for TCP).
    pub fn bind(&self, addr: &SockAddr) -> Result<()> {
        if rn::sockopt::socket_type(&self.fd) == Ok(SocketType::STREAM)
            && addr.0.address_family() != AddressFamily::UNIX
        {
            rn::sockopt::set_socket_reuseaddr(&self.fd, true)
                .map_err(|e| sys_err("setsockopt(SO_REUSEADDR)", e))?;
        }
        rn::bind(&self.fd, &addr.0).map_err(|e| sys_err("bind", e))
    }

    /// Starts listening with a backlog of `backlog` connections.
    pub fn listen(&self, backlog: i32) -> Result<()> {
        rn::listen(&self.fd, backlog).map_err(|e| sys_err("listen", e))
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> Result<SockAddr> {
        rn::getsockname(&self.fd)
            .map(SockAddr)
            .map_err(|e| sys_err("getsockname", e))
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> Result<()> {
        rn::sockopt::set_tcp_nodelay(&self.fd, on)
            .map_err(|e| sys_err("setsockopt(TCP_NODELAY)", e))
    }

    /// Sets `SO_LINGER` (`Some(0)`: a close resets the connection).
    pub fn set_linger(&self, linger: Option<std::time::Duration>) -> Result<()> {
        rn::sockopt::set_socket_linger(&self.fd, linger)
            .map_err(|e| sys_err("setsockopt(SO_LINGER)", e))
    }

    /// Gives up the descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Socket> for OwnedFd {
    fn from(s: Socket) -> OwnedFd {
        s.fd
    }
}

impl IntoRawFd for Socket {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

impl FromRawFd for Socket {
    /// Takes ownership of `fd` as it is (no `O_NONBLOCK` added; see [`Socket::import`]).
    unsafe fn from_raw_fd(fd: RawFd) -> Socket {
        Socket {
            // SAFETY: forwarded from the caller: `fd` is open and owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }
}
