//! pilot's registry: the source contract, the store, the directory source, validation, and the model builder.
#![forbid(unsafe_code)]
