//! The models of the makemore lectures: bigram counts, the bigram neural net and the MLP.
//!
//! Not implemented yet: this crate is filled by the mm-models issue. It exports nothing so far.
