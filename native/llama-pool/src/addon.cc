// addon.cc: entry point of the llama-pool addon. Backend start-up (init: llama_backend_init plus loading the
// prebuilt ggml CPU/GPU backend libraries from node-llama-cpp's platform package), the ABI sanity check, the
// log filter, and the Model wrapper with its off-thread loaders (loadModel, model.createContext).
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "ggml-backend.h"
#include "pool.h"

#ifndef LLAMA_POOL_EXPECTED_LLAMA_VERSION
#define LLAMA_POOL_EXPECTED_LLAMA_VERSION ""
#endif

namespace llama_pool {

// ---------------------------------------------------------------------------------------------------------
// Logging: llama.cpp and ggml log through one callback (possibly from worker threads). Keep warnings and errors.

static int g_minLogLevel = GGML_LOG_LEVEL_WARN;
static const std::thread::id g_mainThread = std::this_thread::get_id();
// While loadBackend runs (main thread), warnings and errors go here instead of stderr: they become its reason.
static std::string* g_capture = nullptr;

static void LogCallback(enum ggml_log_level level, const char* text, void* /*user*/) {
  if (level == GGML_LOG_LEVEL_CONT) {
    return;  // continuation of a line we may have dropped; keep the filter simple
  }
  if (g_capture != nullptr && std::this_thread::get_id() == g_mainThread) {
    if (level >= GGML_LOG_LEVEL_WARN) g_capture->append(text);
    return;
  }
  if (static_cast<int>(level) >= g_minLogLevel) {
    fputs(text, stderr);
  }
}

static Napi::Value SetLogLevel(const Napi::CallbackInfo& info) {
  std::string l = info[0].As<Napi::String>();
  if (l == "debug") g_minLogLevel = GGML_LOG_LEVEL_DEBUG;
  else if (l == "info") g_minLogLevel = GGML_LOG_LEVEL_INFO;
  else if (l == "warn") g_minLogLevel = GGML_LOG_LEVEL_WARN;
  else if (l == "error") g_minLogLevel = GGML_LOG_LEVEL_ERROR;
  else if (l == "none") g_minLogLevel = 1000;
  else throw Napi::TypeError::New(info.Env(), "log level must be debug|info|warn|error|none");
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------------------
// init(libDir): once per process. Loads the ggml backends shipped next to libllama (the CPU variants are
// separate libggml-cpu-<arch>.so files chosen at run time by ggml's registry).

static bool g_initialized = false;

// The struct defaults of the library actually loaded must be the ones the headers we compiled against
// describe; a layout change (other release) would show up as garbage here before any model is touched.
static std::string CheckAbi() {
  llama_context_params c = llama_context_default_params();
  llama_model_params m = llama_model_default_params();
  std::string err;
  if (c.n_ctx != 512 || c.n_batch != 2048 || c.n_ubatch != 512 || c.n_seq_max != 1) err += " context sizes;";
  if (c.type_k != GGML_TYPE_F16 || c.type_v != GGML_TYPE_F16) err += " kv types;";
  if (c.kv_unified != false || c.offload_kqv != true || c.swa_full != true || c.embeddings != false) err += " context flags;";
  if (c.samplers != nullptr || c.n_samplers != 0 || c.ctx_other != nullptr) err += " context tail;";
  if (m.n_gpu_layers != -1 || m.devices != nullptr || m.vocab_only != false || m.use_extra_bufts != true) err += " model params;";
  return err;
}

static Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string libDir = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (!g_initialized) {
    llama_log_set(LogCallback, nullptr);
    std::string abi = CheckAbi();
    if (!abi.empty()) {
      throw Napi::Error::New(env, "llama-pool: the loaded libllama does not match the headers it was compiled against (" + abi +
                                      " ) - rebuild with native/build.mjs");
    }
    llama_backend_init();
    // node-llama-cpp's own addon may have loaded the backends already (same libggml in the same process).
    if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr) {
      if (!libDir.empty()) ggml_backend_load_all_from_path(libDir.c_str());
      else ggml_backend_load_all();
    }
    if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr) {
      throw Napi::Error::New(env, "llama-pool: no CPU backend could be loaded from " + (libDir.empty() ? std::string("the default paths") : libDir));
    }
    g_initialized = true;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("llamaVersion", llama_version());
  out.Set("expectedLlamaVersion", LLAMA_POOL_EXPECTED_LLAMA_VERSION);
  out.Set("systemInfo", llama_print_system_info());
  out.Set("maxParallelSequences", static_cast<double>(llama_max_parallel_sequences()));
  Napi::Array devs = Napi::Array::New(env);
  for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    devs.Set(static_cast<uint32_t>(i), std::string(ggml_backend_dev_name(d)) + " (" + ggml_backend_dev_description(d) + ")");
  }
  out.Set("devices", devs);
  return out;
}

static void RequireInit(Napi::Env env) {
  if (!g_initialized) throw Napi::Error::New(env, "llama-pool: call init(libDir) first");
}

// Every registered device as "name (description)" and whether it is a GPU (discrete or integrated).
static Napi::Array DeviceList(Napi::Env env) {
  Napi::Array devs = Napi::Array::New(env);
  for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", ggml_backend_dev_name(d));
    o.Set("description", ggml_backend_dev_description(d));
    enum ggml_backend_dev_type t = ggml_backend_dev_type(d);
    o.Set("gpu", t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU);
    devs.Set(static_cast<uint32_t>(i), o);
  }
  return devs;
}

// loadBackend(path): registers one more ggml backend library (a GPU one of node-llama-cpp's CUDA or Vulkan
// package: it needs only libggml-base, the same file in every package). Returns whether it loaded, and if not
// why (dlopen fails for want of a driver or runtime; ggml's message, kept off stderr), and the devices then.
static Napi::Value LoadBackend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireInit(env);
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadBackend(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string why;
  g_capture = &why;
  ggml_backend_reg_t reg = ggml_backend_load(path.c_str());
  g_capture = nullptr;
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  Napi::Object out = Napi::Object::New(env);
  out.Set("loaded", reg != nullptr);
  if (reg == nullptr) out.Set("reason", why.empty() ? std::string("dlopen failed") : why);
  out.Set("devices", DeviceList(env));
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Off-thread loaders.

class LoadModelWorker : public Napi::AsyncWorker {
 public:
  LoadModelWorker(Napi::Env env, AddonData* data, std::string path, llama_model_params params)
      : Napi::AsyncWorker(env, "llama_pool.loadModel"), deferred_(Napi::Promise::Deferred::New(env)), data_(data),
        path_(std::move(path)), params_(params) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    model_ = llama_model_load_from_file(path_.c_str(), params_);
    if (model_ == nullptr) SetError("llama.cpp could not load the model " + path_);
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object obj = data_->modelCtor.New({Napi::External<llama_model>::New(env, model_)});
    model_ = nullptr;
    deferred_.Resolve(obj);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }
  ~LoadModelWorker() override {
    if (model_ != nullptr) llama_model_free(model_);  // JS side never got it
  }

 private:
  Napi::Promise::Deferred deferred_;
  AddonData* data_;
  std::string path_;
  llama_model_params params_;
  llama_model* model_ = nullptr;
};

static Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireInit(env);
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "loadModel(path, options?)");
  llama_model_params p = llama_model_default_params();
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("gpuLayers") && o.Get("gpuLayers").IsNumber()) p.n_gpu_layers = o.Get("gpuLayers").As<Napi::Number>().Int32Value();
  }
  auto* w = new LoadModelWorker(env, env.GetInstanceData<AddonData>(), info[0].As<Napi::String>(), p);
  Napi::Promise promise = w->Promise();
  w->Queue();
  return promise;
}

class CreateContextWorker : public Napi::AsyncWorker {
 public:
  // The model counts this pending context (owner->contexts) so it cannot be disposed under llama_init_from_model.
  CreateContextWorker(Napi::Env env, AddonData* data, Napi::Object modelObj, Model* owner, llama_context_params params)
      : Napi::AsyncWorker(env, "llama_pool.createContext"), deferred_(Napi::Promise::Deferred::New(env)), data_(data),
        modelRef_(Napi::Persistent(modelObj)), owner_(owner), model_(owner->model()), params_(params) {
    owner_->contexts++;
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    ctx_ = llama_init_from_model(model_, params_);
    if (ctx_ == nullptr) SetError("llama.cpp could not create the context (out of memory, or unsupported parameters)");
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object obj = data_->contextCtor.New({Napi::External<llama_context>::New(env, ctx_), modelRef_.Value()});
    ctx_ = nullptr;
    owner_->contexts--;  // the Context now counts itself
    deferred_.Resolve(obj);
  }
  void OnError(const Napi::Error& e) override {
    owner_->contexts--;
    deferred_.Reject(e.Value());
  }
  ~CreateContextWorker() override {
    if (ctx_ != nullptr) llama_free(ctx_);
  }

 private:
  Napi::Promise::Deferred deferred_;
  AddonData* data_;
  Napi::ObjectReference modelRef_;
  Model* owner_;
  llama_model* model_;
  llama_context_params params_;
  llama_context* ctx_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------
// Model

void Model::Init(Napi::Env env, Napi::Object exports, AddonData* data) {
  Napi::Function f = DefineClass(env, "LlamaPoolModel",
                                 {
                                     InstanceMethod<&Model::CreateContext>("createContext"),
                                     InstanceMethod<&Model::GetInfo>("info"),
                                     InstanceMethod<&Model::Dispose>("dispose"),
                                 });
  data->modelCtor = Napi::Persistent(f);
  exports.Set("LlamaPoolModel", f);
}

Model::Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "use loadModel(path) to create a model");
  model_ = info[0].As<Napi::External<llama_model>>().Data();
  nVocab_ = llama_vocab_n_tokens(llama_model_get_vocab(model_));
}

Model::~Model() { Free(); }

void Model::Free() {
  if (model_ != nullptr) {
    llama_model_free(model_);
    model_ = nullptr;
  }
}

Napi::Value Model::Dispose(const Napi::CallbackInfo& info) {
  if (contexts > 0) throw Napi::Error::New(info.Env(), "dispose the model's contexts first");
  Free();
  return info.Env().Undefined();
}

Napi::Value Model::GetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (model_ == nullptr) throw Napi::Error::New(env, "model disposed");
  Napi::Object o = Napi::Object::New(env);
  char desc[256];
  llama_model_desc(model_, desc, sizeof desc);
  o.Set("description", desc);
  o.Set("vocabSize", nVocab_);
  o.Set("trainContext", llama_model_n_ctx_train(model_));
  o.Set("layers", llama_model_n_layer(model_));
  o.Set("embedding", llama_model_n_embd(model_));
  o.Set("heads", llama_model_n_head(model_));
  o.Set("kvHeads", llama_model_n_head_kv(model_));
  o.Set("sizeBytes", static_cast<double>(llama_model_size(model_)));
  return o;
}

static uint32_t U32(Napi::Object o, const char* key, uint32_t dflt) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return dflt;
  Napi::Value v = o.Get(key);
  if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a non-negative number");
  return v.As<Napi::Number>().Uint32Value();
}

// createContext({ contextSize, sequences, batchSize, ubatchSize, threads, threadsBatch, flashAttention, kvType })
Napi::Value Model::CreateContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (model_ == nullptr) throw Napi::Error::New(env, "model disposed");
  Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  llama_context_params p = llama_context_default_params();
  const uint32_t hw = std::max(1u, std::thread::hardware_concurrency());
  p.n_ctx = U32(o, "contextSize", 4096);
  p.n_seq_max = U32(o, "sequences", 1);
  p.n_batch = U32(o, "batchSize", 512);
  p.n_ubatch = U32(o, "ubatchSize", std::min<uint32_t>(p.n_batch, 512));
  p.n_threads = static_cast<int32_t>(U32(o, "threads", hw));
  p.n_threads_batch = static_cast<int32_t>(U32(o, "threadsBatch", static_cast<uint32_t>(p.n_threads)));
  p.kv_unified = true;  // the point of this addon: one pool of cells for every sequence
  p.no_perf = true;
  if (p.n_ctx < 1 || p.n_seq_max < 1 || p.n_batch < 1 || p.n_ubatch < 1 || p.n_threads < 1) {
    throw Napi::RangeError::New(env, "contextSize, sequences, batchSize, ubatchSize and threads must be >= 1");
  }
  if (p.n_seq_max > llama_max_parallel_sequences()) {
    throw Napi::RangeError::New(env, "sequences exceeds llama_max_parallel_sequences() = " + std::to_string(llama_max_parallel_sequences()));
  }
  if (o.Has("flashAttention") && o.Get("flashAttention").IsBoolean()) {
    p.flash_attn_type = o.Get("flashAttention").As<Napi::Boolean>() ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
  }
  if (o.Has("kvType") && o.Get("kvType").IsString()) {
    std::string t = o.Get("kvType").As<Napi::String>();
    if (t == "f32") p.type_k = p.type_v = GGML_TYPE_F32;
    else if (t == "f16") p.type_k = p.type_v = GGML_TYPE_F16;
    else throw Napi::TypeError::New(env, "kvType must be f16|f32");
  }
  auto* w = new CreateContextWorker(env, env.GetInstanceData<AddonData>(), info.This().As<Napi::Object>(), this, p);
  Napi::Promise promise = w->Promise();
  w->Queue();
  return promise;
}

// ---------------------------------------------------------------------------------------------------------

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted with the env
  Model::Init(env, exports, data);
  Context::Init(env, exports, data);
  exports.Set("init", Napi::Function::New<Init>(env, "init"));
  exports.Set("loadBackend", Napi::Function::New<LoadBackend>(env, "loadBackend"));
  exports.Set("loadModel", Napi::Function::New<LoadModel>(env, "loadModel"));
  exports.Set("setLogLevel", Napi::Function::New<SetLogLevel>(env, "setLogLevel"));
  return exports;
}

}  // namespace llama_pool

static Napi::Object InitLlamaPool(Napi::Env env, Napi::Object exports) { return llama_pool::InitModule(env, exports); }

NODE_API_MODULE(llama_pool, InitLlamaPool)
