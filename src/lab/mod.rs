//! The local lab (being merged).
#[derive(clap::Subcommand)]
pub enum LabCommand {}
#[derive(Debug, thiserror::Error)]
#[error("lab")]
pub struct LabError;
impl LabError {
    pub fn exit_code(&self) -> i32 {
        2
    }
}
pub fn run(c: LabCommand) -> Result<i32, LabError> {
    match c {}
}
