//! Reading: whole stored batches ([`Batch`], [`Batches`]) and records in
//! order ([`Iter`]), over a snapshot of the segments.

mod batch;
mod batches;
mod encoded;
mod iter;
mod rev;
mod walker;

pub use batch::{Batch, BatchRecords, RecordRef};
pub use batches::Batches;
pub use encoded::EncodedRun;
pub(crate) use encoded::encoded_run;
pub use iter::Iter;
pub use rev::{RevBatches, RevIter};
