// What a validated call of every family holds beside its kernel arguments (paged decode, prefill, sparse decode).
#pragma once
#include <dlpack/dlpack.h>

#include "swajit/swajit.hpp"

namespace swajit {

struct CallProblem {
  AttentionCall call;            // the call's description, as the options and tensors give it
  KernelSpec spec;               // the family's kernel spec of `call`
  int batch = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int device_ordinal = 0;
  bool host_metadata = false;    // the call's metadata tensors are readable from the host (validated there)
};

}  // namespace swajit
