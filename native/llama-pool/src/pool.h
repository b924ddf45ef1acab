// pool.h: declarations shared by the llama-pool addon's files: the Model and Context wrappers over llama.cpp
// (unified KV cell pool, explicit positions, position-keeping range removal) and the per-env constructors.
#pragma once

#include <napi.h>

#include <cstdint>
#include <map>
#include <vector>

#include "llama.h"

namespace llama_pool {

// Constructors of the wrapped classes, one set per Node environment (worker threads get their own).
struct AddonData {
  Napi::FunctionReference modelCtor;
  Napi::FunctionReference contextCtor;
};

class Model : public Napi::ObjectWrap<Model> {
 public:
  static void Init(Napi::Env env, Napi::Object exports, AddonData* data);
  explicit Model(const Napi::CallbackInfo& info);  // constructed from JS only by loadModel()
  ~Model() override;

  llama_model* model() const { return model_; }
  int32_t nVocab() const { return nVocab_; }
  int contexts = 0;  // live contexts created from this model (dispose refuses while > 0)

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value CreateContext(const Napi::CallbackInfo& info);
  Napi::Value GetInfo(const Napi::CallbackInfo& info);
  void Free();

  llama_model* model_ = nullptr;
  int32_t nVocab_ = 0;
};

// Positions a sequence holds, as disjoint runs [start, end) keyed by start: the addon's own count of cells,
// since llama.cpp exposes no "cells used" query.
class Runs {
 public:
  void add(int32_t first, int32_t n);
  int64_t remove(int32_t p0, int32_t p1);  // returns how many positions were in [p0, p1)
  int64_t count() const { return count_; }
  int32_t maxPos() const { return runs_.empty() ? -1 : runs_.rbegin()->second - 1; }
  int32_t minPos() const { return runs_.empty() ? -1 : runs_.begin()->first; }
  const std::map<int32_t, int32_t>& runs() const { return runs_; }
  void clear() { runs_.clear(); count_ = 0; }

 private:
  std::map<int32_t, int32_t> runs_;
  int64_t count_ = 0;
};

class Context : public Napi::ObjectWrap<Context> {
 public:
  static void Init(Napi::Env env, Napi::Object exports, AddonData* data);
  explicit Context(const Napi::CallbackInfo& info);  // constructed from JS only by model.createContext()
  ~Context() override;

  // Used by the decode worker.
  llama_context* ctx() const { return ctx_; }
  llama_batch& batch() { return batch_; }
  int32_t nVocab() const { return nVocab_; }
  void finishDecode(int32_t rc, const std::vector<int32_t>& prevMax);
  bool busy = false;
  std::vector<int32_t> outputRows;  // batch rows flagged for logits in the last decode, in batch order
  bool outputsValid = false;        // the last decode succeeded and its logits are readable

 private:
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value DecodeImpl(const Napi::CallbackInfo& info);
  Napi::Value LogitsView(const Napi::CallbackInfo& info);
  Napi::Value RemoveRange(const Napi::CallbackInfo& info);
  Napi::Value ClearSequence(const Napi::CallbackInfo& info);
  Napi::Value ClearAll(const Napi::CallbackInfo& info);
  Napi::Value SeqPosRange(const Napi::CallbackInfo& info);
  Napi::Value SeqRuns(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value StateSize(const Napi::CallbackInfo& info);
  Napi::Value SeqStateSize(const Napi::CallbackInfo& info);
  Napi::Value SetThreads(const Napi::CallbackInfo& info);
  Napi::Value GetInfo(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  void checkUsable(Napi::Env env, const char* what) const;
  int32_t seqArg(const Napi::CallbackInfo& info, size_t i) const;
  void Free();

  Napi::ObjectReference modelRef_;  // keeps the Model alive while this context lives
  Model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  llama_memory_t mem_ = nullptr;
  llama_batch batch_{};
  int32_t nVocab_ = 0;
  uint32_t nCtx_ = 0, nSeqMax_ = 0, nBatch_ = 0, nUbatch_ = 0;
  std::vector<Runs> seqs_;
  std::vector<int32_t> pendingSeq_, pendingPos_;  // the batch in flight (for the cell count)
  int64_t used_ = 0;
};

}  // namespace llama_pool
