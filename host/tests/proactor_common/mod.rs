//! The configurations every proactor test runs under, defined once for all proactor test files.
#![allow(dead_code)]

pub mod sock;
pub mod svc;

use gpu_uring::proactor::{BackendChoice, Capability, CapabilitySet, Options};

/// One backend configuration of the proactor suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// io_uring with every native capability.
    Uring,
    /// io_uring without SINGLE_ISSUER / DEFER_TASKRUN.
    UringNoSingleIssuer,
    /// io_uring with every capability masked: all emulated paths.
    UringEmulated,
    /// epoll.
    Epoll,
}

impl Config {
    /// Every configuration, in the order the suites report them.
    pub const ALL: [Config; 4] = [
        Config::Uring,
        Config::UringNoSingleIssuer,
        Config::UringEmulated,
        Config::Epoll,
    ];

    /// The configuration's name in test output.
    pub fn name(self) -> &'static str {
        match self {
            Config::Uring => "io_uring",
            Config::UringNoSingleIssuer => "io_uring_no_single_issuer",
            Config::UringEmulated => "io_uring_emulated",
            Config::Epoll => "epoll",
        }
    }

    /// The proactor options that select it.
    pub fn options(self) -> Options {
        let mut o = Options::default();
        match self {
            Config::Uring => o.backend = BackendChoice::IoUring,
            Config::UringNoSingleIssuer => {
                o.backend = BackendChoice::IoUring;
                o.allowed_capabilities = CapabilitySet::ALL
                    .without(Capability::SingleIssuer)
                    .without(Capability::DeferTaskrun);
            }
            Config::UringEmulated => {
                o.backend = BackendChoice::IoUring;
                o.allowed_capabilities = CapabilitySet::NONE;
            }
            Config::Epoll => o.backend = BackendChoice::Epoll,
        }
        o
    }
}

/// Every configuration with its name and options.
pub fn configs() -> Vec<(&'static str, Options)> {
    Config::ALL
        .iter()
        .map(|c| (c.name(), c.options()))
        .collect()
}
