// swajit._swajit: the public C++ API (swajit/swajit.hpp) for Python. Tensors arrive through DLPack (nb::ndarray
// accepts anything with __dlpack__, torch tensors included) and reach the C++ calls as DLTensors over the same memory:
// nothing is copied. The Python package (swajit/ops.py) wraps these functions as torch custom ops; these take every
// option as a keyword argument with the C++ default, and the CUDA stream as an integer handle.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <string>

#include "swajit/swajit.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using Array = nb::ndarray<>;  // any dtype, device and strides: exactly what the producer exported
using OptionalArray = std::optional<Array>;

// A DLTensor over the array's memory and shape/stride arrays (which the array keeps alive for the call).
DLTensor as_dltensor(const Array& a) {
  DLTensor t{};
  t.data = const_cast<void*>(a.data());  // data() already includes the producer's byte_offset
  t.device = DLDevice{static_cast<DLDeviceType>(a.device_type()), a.device_id()};
  t.ndim = static_cast<int32_t>(a.ndim());
  t.dtype = DLDataType{a.dtype().code, a.dtype().bits, a.dtype().lanes};
  t.shape = const_cast<int64_t*>(a.shape_ptr());
  t.strides = const_cast<int64_t*>(a.stride_ptr());
  return t;
}

// Holds the DLTensor of an optional argument so that the options struct can point at it.
struct OptionalTensor {
  explicit OptionalTensor(const OptionalArray& a) {
    if (a) tensor = as_dltensor(*a);
  }
  const DLTensor* get() const { return tensor ? &*tensor : nullptr; }
  std::optional<DLTensor> tensor;
};

swajit::TuningPolicy parse_tuning(const std::string& text) {
  if (text == "default") return swajit::TuningPolicy::kDefault;
  if (text == "heuristic") return swajit::TuningPolicy::kHeuristic;
  if (text == "database") return swajit::TuningPolicy::kDatabase;
  if (text == "tune_on_miss") return swajit::TuningPolicy::kTuneOnMiss;
  throw swajit::Error(swajit::ErrorCode::kInvalidArgument,
                      "tuning = '" + text + "' is not one of 'default', 'heuristic', 'database', 'tune_on_miss'");
}

const char* tuning_name(swajit::TuningPolicy policy) {
  switch (policy) {
    case swajit::TuningPolicy::kDefault: return "default";
    case swajit::TuningPolicy::kHeuristic: return "heuristic";
    case swajit::TuningPolicy::kDatabase: return "database";
    case swajit::TuningPolicy::kTuneOnMiss: return "tune_on_miss";
  }
  return "default";
}

CUstream as_stream(uintptr_t handle) { return reinterpret_cast<CUstream>(handle); }

// The fields DecodeOptions and PrefillOptions share, from the Python keyword arguments of the same names.
template <class Options>
void set_shared_options(Options& o, int local_window, int global_window, std::optional<float> softmax_scale,
                        const std::string& kv_layout, const std::string& gqa, const OptionalTensor& sinks,
                        const std::string& kv_quant, const OptionalTensor& k_scales, const OptionalTensor& v_scales,
                        const std::string& tuning, bool check_device_args) {
  o.local_window = local_window;
  o.global_window = global_window;
  o.softmax_scale = softmax_scale;
  o.kv_layout = swajit::parse_kv_layout(kv_layout);
  o.gqa = swajit::parse_gqa(gqa);
  o.sink_logits = sinks.get();
  o.kv_quant = swajit::parse_kv_quant(kv_quant);
  o.k_scale = k_scales.get();
  o.v_scale = v_scales.get();
  o.tuning = parse_tuning(tuning);
  o.check_device_args = check_device_args;
}

// Everything of DecodeOptions a Python caller sets, with the tensors it points at kept alive beside it.
struct DecodeArgs {
  DecodeArgs(int local_window, int global_window, std::optional<float> softmax_scale, const std::string& kv_layout,
             const std::string& gqa, const OptionalArray& sink_logits, const std::string& kv_quant,
             const OptionalArray& k_scale, const OptionalArray& v_scale, const std::optional<std::string>& config,
             const std::string& tuning, const OptionalArray& workspace, bool check_device_args)
      : sinks(sink_logits), k_scales(k_scale), v_scales(v_scale) {
    set_shared_options(options, local_window, global_window, softmax_scale, kv_layout, gqa, sinks, kv_quant,
                       k_scales, v_scales, tuning, check_device_args);
    if (config) options.config = swajit::DecodeConfig::from_key(*config);
    if (workspace) {
      options.workspace = const_cast<void*>(workspace->data());
      options.workspace_bytes = workspace->nbytes();
    }
  }
  OptionalTensor sinks, k_scales, v_scales;
  swajit::DecodeOptions options;
};

// The same for PrefillOptions.
struct PrefillArgs {
  PrefillArgs(int local_window, int global_window, bool causal, std::optional<float> softmax_scale,
              const std::string& kv_layout, const std::string& gqa, const OptionalArray& sink_logits,
              const std::string& kv_quant, const OptionalArray& k_scale, const OptionalArray& v_scale, int max_q_len,
              const std::optional<std::string>& config, const std::string& tuning, bool check_device_args)
      : sinks(sink_logits), k_scales(k_scale), v_scales(v_scale) {
    set_shared_options(options, local_window, global_window, softmax_scale, kv_layout, gqa, sinks, kv_quant,
                       k_scales, v_scales, tuning, check_device_args);
    options.causal = causal;
    options.max_q_len = max_q_len;
    if (config) options.config = swajit::PrefillConfig::from_key(*config);
  }
  OptionalTensor sinks, k_scales, v_scales;
  swajit::PrefillOptions options;
};

// DecodeOptions::host_seq_lens from a host int32 tensor of the batch's lengths (contiguous), or null.
const int* host_lengths(const OptionalArray& lengths, const Array& seq_lens) {
  if (!lengths) return nullptr;
  const Array& a = *lengths;
  const bool int32 = a.dtype().code == uint8_t(nb::dlpack::dtype_code::Int) && a.dtype().bits == 32 && a.dtype().lanes == 1;
  const bool host = a.device_type() == nb::device::cpu::value;
  if (!int32 || !host || a.ndim() != 1 || a.shape(0) != seq_lens.shape(0) || (a.shape(0) > 1 && a.stride(0) != 1))
    throw swajit::Error(swajit::ErrorCode::kInvalidArgument,
                        "host_seq_lens must be a contiguous int32 CPU tensor of batch = " +
                            std::to_string(seq_lens.shape(0)) + " lengths (the values of seq_lens as the host knows them)");
  return static_cast<const int*>(a.data());
}

void paged_decode(const Array& q, const Array& k_cache, const Array& v_cache, const Array& block_table,
                  const Array& seq_lens, const Array& out, uintptr_t stream, int local_window, int global_window,
                  std::optional<float> softmax_scale, const std::string& kv_layout, const std::string& gqa,
                  const OptionalArray& sink_logits, const std::string& kv_quant, const OptionalArray& k_scale,
                  const OptionalArray& v_scale, const std::optional<std::string>& config, const std::string& tuning,
                  const OptionalArray& workspace, bool check_device_args, const OptionalArray& host_seq_lens) {
  DecodeArgs args(local_window, global_window, softmax_scale, kv_layout, gqa, sink_logits, kv_quant, k_scale,
                  v_scale, config, tuning, workspace, check_device_args);
  args.options.host_seq_lens = host_lengths(host_seq_lens, seq_lens);
  swajit::paged_decode(as_dltensor(q), as_dltensor(k_cache), as_dltensor(v_cache), as_dltensor(block_table),
                       as_dltensor(seq_lens), as_dltensor(out), as_stream(stream), args.options);
}

size_t paged_decode_workspace_bytes(const Array& q, const Array& k_cache, const Array& v_cache,
                                    const Array& block_table, const Array& seq_lens, const Array& out,
                                    int local_window, int global_window, std::optional<float> softmax_scale,
                                    const std::string& kv_layout, const std::string& gqa,
                                    const OptionalArray& sink_logits, const std::string& kv_quant,
                                    const OptionalArray& k_scale, const OptionalArray& v_scale,
                                    const std::optional<std::string>& config, const std::string& tuning) {
  const DecodeArgs args(local_window, global_window, softmax_scale, kv_layout, gqa, sink_logits, kv_quant, k_scale,
                        v_scale, config, tuning, std::nullopt, false);
  return swajit::paged_decode_workspace_bytes(as_dltensor(q), as_dltensor(k_cache), as_dltensor(v_cache),
                                              as_dltensor(block_table), as_dltensor(seq_lens), as_dltensor(out),
                                              args.options);
}

void prefill(const Array& q, const Array& k, const Array& v, const Array& cu_seqlens_q, const Array& cu_seqlens_k,
             const Array& out, uintptr_t stream, int local_window, int global_window, bool causal,
             std::optional<float> softmax_scale, const std::string& gqa, const OptionalArray& sink_logits,
             const std::string& kv_quant, const OptionalArray& k_scale, const OptionalArray& v_scale, int max_q_len,
             const std::optional<std::string>& config, const std::string& tuning, bool check_device_args) {
  const PrefillArgs args(local_window, global_window, causal, softmax_scale, "nhd", gqa, sink_logits, kv_quant,
                         k_scale, v_scale, max_q_len, config, tuning, check_device_args);
  swajit::prefill(as_dltensor(q), as_dltensor(k), as_dltensor(v), as_dltensor(cu_seqlens_q),
                  as_dltensor(cu_seqlens_k), as_dltensor(out), as_stream(stream), args.options);
}

void paged_prefill(const Array& q, const Array& k_cache, const Array& v_cache, const Array& block_table,
                   const Array& seq_lens, const Array& cu_seqlens_q, const Array& out, uintptr_t stream,
                   int local_window, int global_window, bool causal, std::optional<float> softmax_scale,
                   const std::string& kv_layout, const std::string& gqa, const OptionalArray& sink_logits,
                   const std::string& kv_quant, const OptionalArray& k_scale, const OptionalArray& v_scale,
                   int max_q_len, const std::optional<std::string>& config, const std::string& tuning,
                   bool check_device_args) {
  const PrefillArgs args(local_window, global_window, causal, softmax_scale, kv_layout, gqa, sink_logits, kv_quant,
                         k_scale, v_scale, max_q_len, config, tuning, check_device_args);
  swajit::paged_prefill(as_dltensor(q), as_dltensor(k_cache), as_dltensor(v_cache), as_dltensor(block_table),
                        as_dltensor(seq_lens), as_dltensor(cu_seqlens_q), as_dltensor(out), as_stream(stream),
                        args.options);
}

// The same for SparseDecodeOptions; global_window (must be 0) and tuning (no tuned winners for this family yet) are
// left at their defaults.
struct SparseArgs {
  SparseArgs(int local_window, std::optional<float> softmax_scale, const std::string& kv_layout, const std::string& gqa,
             const OptionalArray& sink_logits, const OptionalArray& score_bias, const std::string& kv_quant,
             const OptionalArray& k_scale, const OptionalArray& v_scale, const std::optional<std::string>& config,
             bool check_device_args)
      : sinks(sink_logits), bias(score_bias), k_scales(k_scale), v_scales(v_scale) {
    const swajit::SparseDecodeOptions defaults;
    set_shared_options(options, local_window, defaults.global_window, softmax_scale, kv_layout, gqa, sinks, kv_quant,
                       k_scales, v_scales, tuning_name(defaults.tuning), check_device_args);
    options.score_bias = bias.get();
    if (config) options.config = swajit::SparseDecodeConfig::from_key(*config);
  }
  OptionalTensor sinks, bias, k_scales, v_scales;
  swajit::SparseDecodeOptions options;
};

void sparse_decode(const Array& q, const Array& k_cache, const OptionalArray& v_cache, const Array& block_table,
                   const Array& seq_lens, const Array& indices, const Array& out, uintptr_t stream, int local_window,
                   std::optional<float> softmax_scale, const std::string& kv_layout, const std::string& gqa,
                   const OptionalArray& sink_logits, const OptionalArray& score_bias, const std::string& kv_quant,
                   const OptionalArray& k_scale, const OptionalArray& v_scale,
                   const std::optional<std::string>& config, bool check_device_args) {
  const SparseArgs args(local_window, softmax_scale, kv_layout, gqa, sink_logits, score_bias, kv_quant, k_scale,
                        v_scale, config, check_device_args);
  const OptionalTensor v(v_cache);
  swajit::sparse_decode(as_dltensor(q), as_dltensor(k_cache), v.get(), as_dltensor(block_table),
                        as_dltensor(seq_lens), as_dltensor(indices), as_dltensor(out), as_stream(stream),
                        args.options);
}

// The C++ defaults of the options the Python wrappers expose, so that a test can hold them equal: first the fields
// set_shared_options sets, then each struct's own.
template <class Options>
nb::dict shared_defaults(const Options& o) {
  nb::dict d;
  d["local_window"] = o.local_window;
  d["global_window"] = o.global_window;
  d["softmax_scale"] = o.softmax_scale ? nb::cast(*o.softmax_scale) : nb::none();
  d["kv_layout"] = std::string(swajit::to_string(o.kv_layout));
  d["gqa"] = std::string(swajit::to_string(o.gqa));
  d["kv_quant"] = std::string(swajit::to_string(o.kv_quant));
  d["tuning"] = tuning_name(o.tuning);
  d["check_device_args"] = o.check_device_args;
  return d;
}

nb::dict decode_defaults() { return shared_defaults(swajit::DecodeOptions{}); }

nb::dict prefill_defaults() {
  const swajit::PrefillOptions o;
  nb::dict d = shared_defaults(o);
  d["causal"] = o.causal;
  d["max_q_len"] = o.max_q_len;
  return d;
}

nb::dict sparse_decode_defaults() {
  nb::dict d = shared_defaults(swajit::SparseDecodeOptions{});
  d.attr("pop")("global_window");  // not exposed: see SparseArgs
  d.attr("pop")("tuning");
  return d;
}

nb::list cuda_devices() {
  nb::list devices;
  for (const swajit::DeviceInfo& d : swajit::cuda_devices()) {
    nb::dict info;
    info["ordinal"] = d.ordinal;
    info["name"] = d.name;
    info["arch"] = d.arch();
    info["sku"] = d.sku();
    info["sm_count"] = d.sm_count;
    info["l2_bytes"] = d.l2_bytes;
    info["total_memory"] = d.total_memory;
    devices.append(info);
  }
  return devices;
}

}  // namespace

NB_MODULE(_swajit, m) {
  m.doc() = "swajit's C++ API over DLPack tensors; use the wrappers in the swajit package (swajit.ops)";

  nb::enum_<swajit::ErrorCode>(m, "ErrorCode", "What kind of failure a swajit.Error reports")
      .value("invalid_argument", swajit::ErrorCode::kInvalidArgument, "an argument is outside its allowed range")
      .value("unsupported", swajit::ErrorCode::kUnsupported, "a valid request this build or device cannot serve")
      .value("no_device", swajit::ErrorCode::kNoDevice, "no CUDA driver, GPU or NVRTC where one is needed")
      .value("compile_error", swajit::ErrorCode::kCompileError, "NVRTC or Clang rejected generated source")
      .value("cuda_error", swajit::ErrorCode::kCudaError, "a CUDA Driver API call failed")
      .value("database_error", swajit::ErrorCode::kDatabaseError, "the tuning database could not be used")
      .value("device_argument", swajit::ErrorCode::kDeviceArgument, "a kernel found invalid seq_lens / block_table");

  // swajit.Error(message, code): a RuntimeError whose .code is an ErrorCode; str() is the C++ message.
  static PyObject* error_type = PyErr_NewExceptionWithDoc(
      "swajit.Error", "A swajit call failed; .code (swajit.ErrorCode) says how, the message names the argument.",
      PyExc_RuntimeError, nullptr);
  m.attr("Error") = nb::handle(error_type);
  nb::register_exception_translator(
      [](const std::exception_ptr& p, void*) {
        try {
          std::rethrow_exception(p);
        } catch (const swajit::Error& e) {
          nb::object code = nb::cast(e.code());
          nb::object error = nb::steal(PyObject_CallFunction(error_type, "s", e.what()));
          if (!error.is_valid()) return;  // constructing it raised; that exception stands
          nb::setattr(error, "code", code);
          PyErr_SetObject(error_type, error.ptr());
        }
      });

  const auto release = nb::call_guard<nb::gil_scoped_release>();  // a first call may compile for seconds
  m.def("paged_decode", &paged_decode, "q"_a, "k_cache"_a, "v_cache"_a, "block_table"_a, "seq_lens"_a, "out"_a,
        "stream"_a = 0, nb::kw_only(), "local_window"_a = 0, "global_window"_a = 0, "softmax_scale"_a = nb::none(),
        "kv_layout"_a = "nhd", "gqa"_a = "grouped", "sink_logits"_a = nb::none(), "kv_quant"_a = "none",
        "k_scale"_a = nb::none(), "v_scale"_a = nb::none(), "config"_a = nb::none(), "tuning"_a = "default",
        "workspace"_a = nb::none(), "check_device_args"_a = false, "host_seq_lens"_a = nb::none(), release,
        "swajit::paged_decode on DLPack tensors; `stream` is a CUstream handle (0: the legacy default stream)");
  m.def("paged_decode_workspace_bytes", &paged_decode_workspace_bytes, "q"_a, "k_cache"_a, "v_cache"_a,
        "block_table"_a, "seq_lens"_a, "out"_a, nb::kw_only(), "local_window"_a = 0, "global_window"_a = 0,
        "softmax_scale"_a = nb::none(), "kv_layout"_a = "nhd", "gqa"_a = "grouped", "sink_logits"_a = nb::none(),
        "kv_quant"_a = "none", "k_scale"_a = nb::none(), "v_scale"_a = nb::none(), "config"_a = nb::none(),
        "tuning"_a = "default", release, "Bytes of split-KV workspace paged_decode needs for these arguments");
  m.def("prefill", &prefill, "q"_a, "k"_a, "v"_a, "cu_seqlens_q"_a, "cu_seqlens_k"_a, "out"_a, "stream"_a = 0,
        nb::kw_only(), "local_window"_a = 0, "global_window"_a = 0, "causal"_a = true, "softmax_scale"_a = nb::none(),
        "gqa"_a = "grouped", "sink_logits"_a = nb::none(), "kv_quant"_a = "none", "k_scale"_a = nb::none(),
        "v_scale"_a = nb::none(), "max_q_len"_a = 0, "config"_a = nb::none(), "tuning"_a = "default",
        "check_device_args"_a = false, release, "swajit::prefill (CUDA) on DLPack tensors");
  m.def("paged_prefill", &paged_prefill, "q"_a, "k_cache"_a, "v_cache"_a, "block_table"_a, "seq_lens"_a,
        "cu_seqlens_q"_a, "out"_a, "stream"_a = 0, nb::kw_only(), "local_window"_a = 0, "global_window"_a = 0,
        "causal"_a = true, "softmax_scale"_a = nb::none(), "kv_layout"_a = "nhd", "gqa"_a = "grouped",
        "sink_logits"_a = nb::none(), "kv_quant"_a = "none", "k_scale"_a = nb::none(), "v_scale"_a = nb::none(),
        "max_q_len"_a = 0, "config"_a = nb::none(), "tuning"_a = "default", "check_device_args"_a = false, release,
        "swajit::paged_prefill (CUDA) on DLPack tensors");
  m.def("sparse_decode", &sparse_decode, "q"_a, "k_cache"_a, "v_cache"_a.none(), "block_table"_a, "seq_lens"_a,
        "indices"_a, "out"_a, "stream"_a = 0, nb::kw_only(), "local_window"_a = 0, "softmax_scale"_a = nb::none(),
        "kv_layout"_a = "nhd", "gqa"_a = "grouped", "sink_logits"_a = nb::none(), "score_bias"_a = nb::none(),
        "kv_quant"_a = "none", "k_scale"_a = nb::none(), "v_scale"_a = nb::none(), "config"_a = nb::none(),
        "check_device_args"_a = false, release,
        "swajit::sparse_decode on DLPack tensors; v_cache None: one shared K/V cache (MLA)");
  m.def(
      "check_device_errors",
      [](int device, uintptr_t stream) { swajit::check_device_errors(device, as_stream(stream)); }, "device"_a,
      "stream"_a, release,
        "Waits for the stream; raises Error(device_argument) if a kernel since the last check found bad metadata");
  m.def("set_tuning_db_path", &swajit::set_tuning_db_path, "path"_a, "Use this tuning database file from now on");
  m.def("cuda_devices", &cuda_devices, "The CUDA devices swajit sees (empty without a driver or GPU)");
#ifdef SWAJIT_HAVE_CPU_BACKEND
  m.attr("HAS_CPU_BACKEND") = true;
#else
  m.attr("HAS_CPU_BACKEND") = false;  // built with SWAJIT_CPU_BACKEND=OFF: CPU tensors raise Error(unsupported)
#endif
  m.def("decode_defaults", &decode_defaults, "DecodeOptions' C++ defaults, as the Python wrappers expose them");
  m.def("sparse_decode_defaults", &sparse_decode_defaults,
        "SparseDecodeOptions' C++ defaults, as the Python wrapper exposes them");
  m.def("prefill_defaults", &prefill_defaults, "PrefillOptions' C++ defaults, as the Python wrappers expose them");
}
