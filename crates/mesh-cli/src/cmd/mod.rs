//! One module per command; each has `Args` (clap) and `run`.

pub(crate) mod init;
pub(crate) mod lint;
pub(crate) mod test;
