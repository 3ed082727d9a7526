//! One module per command; each has `Args` (clap) and `run`.

pub(crate) mod access;
pub(crate) mod audit;
pub(crate) mod changelog;
pub(crate) mod demo;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod init;
pub(crate) mod lifecycle;
pub(crate) mod lineage;
pub(crate) mod lint;
pub(crate) mod location;
pub(crate) mod masking_key;
pub(crate) mod new;
pub(crate) mod policy;
pub(crate) mod publish;
pub(crate) mod query;
pub(crate) mod run;
pub(crate) mod schedule;
pub(crate) mod search;
pub(crate) mod serve;
pub(crate) mod show;
pub(crate) mod sla;
pub(crate) mod subscribe;
pub(crate) mod test;
pub(crate) mod token;
