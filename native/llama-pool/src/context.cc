// context.cc: the Context wrapper of the llama-pool addon. One llama_context with a UNIFIED KV cache (one pool
// of n_ctx cells shared by all sequences), multi-sequence decode of one explicit batch per call on a worker
// thread (logits copied into a caller-owned Float32Array off the main thread, or viewed in place), removal of
// position ranges that keeps the other positions where they are (llama_memory_seq_rm, no shift), and the
// addon's own per-sequence record of resident positions, which gives the pool's used/free cells.
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "pool.h"

namespace llama_pool {

// ---------------------------------------------------------------------------------------------------------
// Runs

void Runs::add(int32_t first, int32_t n) {
  if (n <= 0) return;
  int32_t a = first, b = first + n;
  // Merge with any run touching [a, b); callers only add positions not held yet.
  auto it = runs_.upper_bound(a);
  if (it != runs_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= a) {
      a = prev->first;
      b = std::max(b, prev->second);
      count_ -= prev->second - prev->first;
      runs_.erase(prev);
    }
  }
  it = runs_.lower_bound(a);
  while (it != runs_.end() && it->first <= b) {
    b = std::max(b, it->second);
    count_ -= it->second - it->first;
    it = runs_.erase(it);
  }
  runs_[a] = b;
  count_ += b - a;
}

int64_t Runs::remove(int32_t p0, int32_t p1) {
  if (p1 <= p0) return 0;
  int64_t removed = 0;
  auto it = runs_.upper_bound(p0);
  if (it != runs_.begin()) --it;
  while (it != runs_.end() && it->first < p1) {
    const int32_t a = it->first, b = it->second;
    if (b <= p0) {
      ++it;
      continue;
    }
    const int32_t lo = std::max(a, p0), hi = std::min(b, p1);
    removed += hi - lo;
    it = runs_.erase(it);
    if (a < lo) runs_[a] = lo;
    if (hi < b) {
      it = runs_.emplace(hi, b).first;
      ++it;
    }
  }
  count_ -= removed;
  return removed;
}

// ---------------------------------------------------------------------------------------------------------
// Decode worker: llama_decode (+ logits copy) on the libuv pool; the cell record is updated back on the main
// thread. Holds the context and the output array alive until it settles.

class DecodeWorker : public Napi::AsyncWorker {
 public:
  DecodeWorker(Napi::Env env, Context* c, Napi::Object self, float* out, Napi::Value outVal, std::vector<int32_t> prevMax)
      : Napi::AsyncWorker(env, "llama_pool.decode"), deferred_(Napi::Promise::Deferred::New(env)), c_(c),
        self_(Napi::Persistent(self)), out_(out), prevMax_(std::move(prevMax)) {
    if (out_ != nullptr) outRef_ = Napi::Persistent(outVal.As<Napi::Object>());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    rc_ = llama_decode(c_->ctx(), c_->batch());
    if (rc_ != 0) {
      SetError(rc_ == 1 ? "llama_decode: no KV slot for the batch (pool full) [rc 1]"
               : rc_ == -1 ? "llama_decode: invalid batch [rc -1]"
               : rc_ == 2 ? "llama_decode: aborted [rc 2]"
                          : "llama_decode: fatal error [rc " + std::to_string(rc_) + "]");
      return;
    }
    if (out_ != nullptr) {
      const size_t V = static_cast<size_t>(c_->nVocab());
      for (size_t k = 0; k < c_->outputRows.size(); k++) {
        const float* p = llama_get_logits_ith(c_->ctx(), c_->outputRows[k]);
        if (p == nullptr) {
          SetError("llama_get_logits_ith returned no logits for batch row " + std::to_string(c_->outputRows[k]));
          return;
        }
        std::memcpy(out_ + k * V, p, V * sizeof(float));
      }
    }
  }
  void OnOK() override {
    c_->finishDecode(rc_, prevMax_);
    deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(c_->outputRows.size())));
  }
  void OnError(const Napi::Error& e) override {
    c_->finishDecode(rc_, prevMax_);
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Context* c_;
  Napi::ObjectReference self_;
  Napi::ObjectReference outRef_;
  float* out_;
  std::vector<int32_t> prevMax_;
  int32_t rc_ = 0;
};

// ---------------------------------------------------------------------------------------------------------
// Context

void Context::Init(Napi::Env env, Napi::Object exports, AddonData* data) {
  Napi::Function f = DefineClass(env, "LlamaPoolContext",
                                 {
                                     InstanceMethod<&Context::Decode>("decode"),
                                     InstanceMethod<&Context::LogitsView>("logitsView"),
                                     InstanceMethod<&Context::RemoveRange>("removeRange"),
                                     InstanceMethod<&Context::ClearSequence>("clearSequence"),
                                     InstanceMethod<&Context::ClearAll>("clearAll"),
                                     InstanceMethod<&Context::SeqPosRange>("seqPosRange"),
                                     InstanceMethod<&Context::SeqRuns>("seqRuns"),
                                     InstanceMethod<&Context::Stats>("stats"),
                                     InstanceMethod<&Context::StateSize>("stateSize"),
                                     InstanceMethod<&Context::SeqStateSize>("seqStateSize"),
                                     InstanceMethod<&Context::SetThreads>("setThreads"),
                                     InstanceMethod<&Context::GetInfo>("info"),
                                     InstanceMethod<&Context::Dispose>("dispose"),
                                 });
  data->contextCtor = Napi::Persistent(f);
  exports.Set("LlamaPoolContext", f);
}

Context::Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsExternal() || !info[1].IsObject()) throw Napi::TypeError::New(env, "use model.createContext(options)");
  ctx_ = info[0].As<Napi::External<llama_context>>().Data();
  Napi::Object modelObj = info[1].As<Napi::Object>();
  model_ = Model::Unwrap(modelObj);
  modelRef_ = Napi::Persistent(modelObj);
  model_->contexts++;
  mem_ = llama_get_memory(ctx_);
  nVocab_ = model_->nVocab();
  nCtx_ = llama_n_ctx(ctx_);
  nSeqMax_ = llama_n_seq_max(ctx_);
  nBatch_ = llama_n_batch(ctx_);
  nUbatch_ = llama_n_ubatch(ctx_);
  batch_ = llama_batch_init(static_cast<int32_t>(nBatch_), 0, 1);
  seqs_.resize(nSeqMax_);
}

Context::~Context() {
  if (!busy) Free();  // a decode in flight holds a reference, so this is only reached idle
}

void Context::Free() {
  if (ctx_ == nullptr) return;
  llama_batch_free(batch_);
  batch_ = llama_batch{};
  llama_free(ctx_);
  ctx_ = nullptr;
  mem_ = nullptr;
  if (model_ != nullptr) model_->contexts--;
  model_ = nullptr;
  modelRef_.Reset();
}

void Context::checkUsable(Napi::Env env, const char* what) const {
  if (ctx_ == nullptr) throw Napi::Error::New(env, std::string(what) + ": context disposed");
  if (busy) throw Napi::Error::New(env, std::string(what) + ": a decode is in flight on this context (await it first)");
}

int32_t Context::seqArg(const Napi::CallbackInfo& info, size_t i) const {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "sequence id must be a number");
  const int32_t s = info[i].As<Napi::Number>().Int32Value();
  if (s < 0 || static_cast<uint32_t>(s) >= nSeqMax_) {
    throw Napi::RangeError::New(info.Env(), "sequence id " + std::to_string(s) + " outside [0, " + std::to_string(nSeqMax_) + ")");
  }
  return s;
}

// decode(tokens: Int32Array, positions: Int32Array, seqIds: Int32Array, logits: Uint8Array, out?: Float32Array)
//   -> Promise<number of logit rows>. Row k of `out` (k-th flagged batch row, in batch order) gets that row's
//   logits; without `out`, read them with logitsView(k) until the next decode.
Napi::Value Context::Decode(const Napi::CallbackInfo& info) {
  // Promise-returning: argument and state errors reject instead of throwing synchronously.
  try {
    return DecodeImpl(info);
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(info.Env());
    d.Reject(e.Value());
    return d.Promise();
  }
}

Napi::Value Context::DecodeImpl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkUsable(env, "decode");
  if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray() || !info[3].IsTypedArray()) {
    throw Napi::TypeError::New(env, "decode(tokens: Int32Array, positions: Int32Array, seqIds: Int32Array, logits: Uint8Array, out?: Float32Array)");
  }
  auto tokens = info[0].As<Napi::TypedArray>();
  auto positions = info[1].As<Napi::TypedArray>();
  auto seqIds = info[2].As<Napi::TypedArray>();
  auto logits = info[3].As<Napi::TypedArray>();
  if (tokens.TypedArrayType() != napi_int32_array || positions.TypedArrayType() != napi_int32_array ||
      seqIds.TypedArrayType() != napi_int32_array || logits.TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, "decode: tokens, positions, seqIds must be Int32Array and logits a Uint8Array");
  }
  const size_t n = tokens.ElementLength();
  if (n == 0 || n > nBatch_) throw Napi::RangeError::New(env, "decode: batch of " + std::to_string(n) + " tokens, must be 1.." + std::to_string(nBatch_));
  if (positions.ElementLength() != n || seqIds.ElementLength() != n || logits.ElementLength() != n) {
    throw Napi::RangeError::New(env, "decode: tokens, positions, seqIds and logits must have the same length");
  }
  const int32_t* tok = tokens.As<Napi::Int32Array>().Data();
  const int32_t* pos = positions.As<Napi::Int32Array>().Data();
  const int32_t* sid = seqIds.As<Napi::Int32Array>().Data();
  const uint8_t* lg = logits.As<Napi::Uint8Array>().Data();

  // llama.cpp's rule (llama_batch_allocr::init): a sequence's positions in one batch are contiguous and start
  // one past the largest position it holds. Checked here, in batch order, to fail with a clear message.
  std::vector<int32_t> next(nSeqMax_, INT32_MIN);
  size_t nOut = 0;
  for (size_t i = 0; i < n; i++) {
    const int32_t s = sid[i];
    if (s < 0 || static_cast<uint32_t>(s) >= nSeqMax_) throw Napi::RangeError::New(env, "decode: row " + std::to_string(i) + ": sequence id " + std::to_string(s) + " outside [0, " + std::to_string(nSeqMax_) + ")");
    if (tok[i] < 0 || tok[i] >= nVocab_) throw Napi::RangeError::New(env, "decode: row " + std::to_string(i) + ": token " + std::to_string(tok[i]) + " outside the vocabulary");
    if (pos[i] < 0) throw Napi::RangeError::New(env, "decode: row " + std::to_string(i) + ": negative position");
    if (next[s] == INT32_MIN) {
      const int32_t mx = seqs_[s].maxPos();
      if (mx >= 0 && pos[i] != mx + 1) {
        throw Napi::RangeError::New(env, "decode: sequence " + std::to_string(s) + " holds positions up to " + std::to_string(mx) + ", so its next token must be at " +
                                             std::to_string(mx + 1) + " (got " + std::to_string(pos[i]) + ")");
      }
    } else if (pos[i] != next[s]) {
      throw Napi::RangeError::New(env, "decode: sequence " + std::to_string(s) + " positions must be contiguous within a batch (expected " + std::to_string(next[s]) +
                                           ", got " + std::to_string(pos[i]) + ")");
    }
    next[s] = pos[i] + 1;
    if (lg[i]) nOut++;
  }
  if (used_ + static_cast<int64_t>(n) > static_cast<int64_t>(nCtx_)) {
    throw Napi::RangeError::New(env, "decode: pool full: " + std::to_string(used_) + " cells used + " + std::to_string(n) + " new > " + std::to_string(nCtx_) + " cells");
  }
  float* out = nullptr;
  Napi::Value outVal = env.Undefined();
  if (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull()) {
    if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw Napi::TypeError::New(env, "decode: out must be a Float32Array");
    auto o = info[4].As<Napi::Float32Array>();
    if (o.ElementLength() < nOut * static_cast<size_t>(nVocab_)) {
      throw Napi::RangeError::New(env, "decode: out holds " + std::to_string(o.ElementLength()) + " floats, needs " + std::to_string(nOut) + " x " + std::to_string(nVocab_));
    }
    out = o.Data();
    outVal = o;
  }

  std::vector<int32_t> prevMax(nSeqMax_, -1);
  for (uint32_t s = 0; s < nSeqMax_; s++) prevMax[s] = seqs_[s].maxPos();
  batch_.n_tokens = static_cast<int32_t>(n);
  outputRows.clear();
  pendingSeq_.assign(sid, sid + n);
  pendingPos_.assign(pos, pos + n);
  for (size_t i = 0; i < n; i++) {
    batch_.token[i] = tok[i];
    batch_.pos[i] = pos[i];
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = sid[i];
    batch_.logits[i] = lg[i] ? 1 : 0;
    if (lg[i]) outputRows.push_back(static_cast<int32_t>(i));
  }
  busy = true;
  outputsValid = false;
  auto* w = new DecodeWorker(env, this, info.This().As<Napi::Object>(), out, outVal, std::move(prevMax));
  Napi::Promise promise = w->Promise();
  w->Queue();
  return promise;
}

// Back on the main thread: record the cells the batch now holds.
void Context::finishDecode(int32_t rc, const std::vector<int32_t>& prevMax) {
  busy = false;
  outputsValid = rc == 0;
  if (rc == 1 || rc == -1) return;  // llama.cpp restored the memory state
  for (size_t i = 0; i < pendingSeq_.size(); i++) {
    const int32_t s = pendingSeq_[i], p = pendingPos_[i];
    // On an abort / fatal error the ubatches already processed stay: those are the positions up to the
    // sequence's new maximum (its batch positions are contiguous and continue prevMax).
    if (rc != 0) {
      const int32_t mx = llama_memory_seq_pos_max(mem_, s);
      if (p > mx || p <= prevMax[s]) continue;
    }
    seqs_[s].add(p, 1);
    used_++;
  }
  pendingSeq_.clear();
  pendingPos_.clear();
}

// logitsView(k): Float32Array over llama.cpp's own logits of the k-th flagged row of the last decode. No copy;
// valid only until the next decode or dispose (reading it later reads whatever is there).
Napi::Value Context::LogitsView(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkUsable(env, "logitsView");
  if (!outputsValid) throw Napi::Error::New(env, "logitsView: the last decode produced no logits");
  const int64_t k = info.Length() > 0 ? info[0].As<Napi::Number>().Int64Value() : 0;
  if (k < 0 || k >= static_cast<int64_t>(outputRows.size())) throw Napi::RangeError::New(env, "logitsView: row " + std::to_string(k) + " not flagged");
  float* p = llama_get_logits_ith(ctx_, outputRows[static_cast<size_t>(k)]);
  if (p == nullptr) throw Napi::Error::New(env, "logitsView: llama.cpp returned no logits");
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, p, static_cast<size_t>(nVocab_) * sizeof(float));
  return Napi::Float32Array::New(env, static_cast<size_t>(nVocab_), ab, 0);
}

// removeRange(seq, p0, p1) -> cells freed. Positions [p0, p1) of the sequence leave the pool; every other
// position keeps its cell, its position and its (already rotated) key. p1 < 0 means "to the end".
Napi::Value Context::RemoveRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkUsable(env, "removeRange");
  const int32_t s = seqArg(info, 0);
  const int32_t p0 = info[1].As<Napi::Number>().Int32Value();
  const int32_t p1 = info[2].As<Napi::Number>().Int32Value();
  if (p0 < 0) throw Napi::RangeError::New(env, "removeRange: p0 must be >= 0");
  if (p1 >= 0 && p1 <= p0) return Napi::Number::New(env, 0);
  if (!llama_memory_seq_rm(mem_, s, p0, p1)) throw Napi::Error::New(env, "removeRange: llama.cpp refused to remove a partial range (recurrent model?)");
  const int64_t freed = seqs_[s].remove(p0, p1 < 0 ? INT32_MAX : p1);
  used_ -= freed;
  return Napi::Number::New(env, static_cast<double>(freed));
}

Napi::Value Context::ClearSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkUsable(env, "clearSequence");
  const int32_t s = seqArg(info, 0);
  llama_memory_seq_rm(mem_, s, -1, -1);
  const int64_t freed = seqs_[s].count();
  seqs_[s].clear();
  used_ -= freed;
  return Napi::Number::New(env, static_cast<double>(freed));
}

Napi::Value Context::ClearAll(const Napi::CallbackInfo& info) {
  checkUsable(info.Env(), "clearAll");
  llama_memory_clear(mem_, false);
  for (auto& r : seqs_) r.clear();
  used_ = 0;
  return info.Env().Undefined();
}

// seqPosRange(seq) -> { min, max } as llama.cpp reports them (-1 when empty).
Napi::Value Context::SeqPosRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkUsable(env, "seqPosRange");
  const int32_t s = seqArg(info, 0);
  Napi::Object o = Napi::Object::New(env);
  o.Set("min", llama_memory_seq_pos_min(mem_, s));
  o.Set("max", llama_memory_seq_pos_max(mem_, s));
  return o;
}

// seqRuns(seq) -> Int32Array [start0, end0, start1, end1, ...]: resident positions by the addon's record.
Napi::Value Context::SeqRuns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ctx_ == nullptr) throw Napi::Error::New(env, "seqRuns: context disposed");
  const int32_t s = seqArg(info, 0);
  const auto& runs = seqs_[s].runs();
  Napi::Int32Array a = Napi::Int32Array::New(env, runs.size() * 2);
  size_t i = 0;
  for (const auto& [b, e] : runs) {
    a[i++] = b;
    a[i++] = e;
  }
  return a;
}

// stats() -> { cells, used, free, perSequence: number[] } (the addon's count; llama.cpp has no query for it).
Napi::Value Context::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ctx_ == nullptr) throw Napi::Error::New(env, "stats: context disposed");
  Napi::Object o = Napi::Object::New(env);
  o.Set("cells", nCtx_);
  o.Set("used", static_cast<double>(used_));
  o.Set("free", static_cast<double>(static_cast<int64_t>(nCtx_) - used_));
  Napi::Array per = Napi::Array::New(env, nSeqMax_);
  for (uint32_t s = 0; s < nSeqMax_; s++) per.Set(s, static_cast<double>(seqs_[s].count()));
  o.Set("perSequence", per);
  return o;
}

// stateSize(): llama_state_get_size (a dry-run serialisation: grows by a fixed amount per held cell; tests
// use it to cross-check the cell count).
Napi::Value Context::StateSize(const Napi::CallbackInfo& info) {
  checkUsable(info.Env(), "stateSize");
  return Napi::Number::New(info.Env(), static_cast<double>(llama_state_get_size(ctx_)));
}

// seqStateSize(seq): llama_state_seq_get_size, a dry run over the cells llama.cpp itself holds for the
// sequence: a fixed header plus a fixed record per cell, so it checks the addon's count independently.
Napi::Value Context::SeqStateSize(const Napi::CallbackInfo& info) {
  checkUsable(info.Env(), "seqStateSize");
  const int32_t s = seqArg(info, 0);
  return Napi::Number::New(info.Env(), static_cast<double>(llama_state_seq_get_size(ctx_, s)));
}

Napi::Value Context::SetThreads(const Napi::CallbackInfo& info) {
  checkUsable(info.Env(), "setThreads");
  const int32_t t = info[0].As<Napi::Number>().Int32Value();
  const int32_t tb = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : t;
  if (t < 1 || tb < 1) throw Napi::RangeError::New(info.Env(), "threads must be >= 1");
  llama_set_n_threads(ctx_, t, tb);
  return info.Env().Undefined();
}

Napi::Value Context::GetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ctx_ == nullptr) throw Napi::Error::New(env, "info: context disposed");
  Napi::Object o = Napi::Object::New(env);
  o.Set("cells", nCtx_);
  o.Set("cellsPerSequenceLimit", llama_n_ctx_seq(ctx_));
  o.Set("sequences", nSeqMax_);
  o.Set("batchSize", nBatch_);
  o.Set("ubatchSize", nUbatch_);
  o.Set("vocabSize", nVocab_);
  o.Set("threads", llama_n_threads(ctx_));
  o.Set("threadsBatch", llama_n_threads_batch(ctx_));
  o.Set("kvUnified", true);
  return o;
}

Napi::Value Context::Dispose(const Napi::CallbackInfo& info) {
  if (busy) throw Napi::Error::New(info.Env(), "dispose: a decode is in flight (await it first)");
  Free();
  return info.Env().Undefined();
}

}  // namespace llama_pool
