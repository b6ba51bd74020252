//! SSH transport (russh): one connection per node, exec, atomic uploads.
