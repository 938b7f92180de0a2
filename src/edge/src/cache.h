// The edge's object cache. Entries are immutable once stored and shared by pointer. The shared
// store is bounded in bytes and evicts in insertion order (live media ages out oldest first,
// parts and their segments together); expired entries (playlists past max-age) are never served.
// A per-thread front map answers repeat hits without taking the store's lock.
// An entry whose body of unknown length is still arriving (Entry::source) is counted as it grows
// (grow()): the bound holds however many such objects are open at once. Evicting or replacing an
// entry only drops the cache's reference: viewers being written from it keep their body.
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "sf/core/bytes.h"
#include "sf/http/chunked_body.h"
#include "sf/http/server.h"
#include "sf/http/shared_body.h"

namespace sf::edge {

using Clock = std::chrono::steady_clock;

// Whether a stream's objects need a viewer token, shared by every cached object of the stream and
// updated from each upstream answer that says (X-SF-Access), so a visibility change reaches objects
// cached before it (immutable segments live for a year).
struct StreamAccessState {
  std::atomic<bool> token_required{false};
};

struct Entry {
  int status = 200;
  std::string content_type;
  std::string cache_control;
  std::string etag;
  Bytes body;
  Clock::time_point stored;
  Clock::time_point expires;
  std::int64_t upstream_age = 0;              // seconds, from the upstream's Age header
  std::shared_ptr<StreamAccessState> access;  // /live/<stream>/ objects; null elsewhere
  // Set while the body is still arriving from the upstream (`body` is then its whole block, to be
  // read only once the stream completes). An entry whose stream failed is never served.
  std::shared_ptr<const http::SharedBody> stream;
  // Set while a body of unknown length (a chunked upstream answer) is still arriving: answers are
  // written from its pieces with chunked coding (`body` is empty; the cache counts the bytes
  // received so far, told by Cache::grow(), until the complete entry replaces it). An entry whose
  // source failed is never served.
  std::shared_ptr<const http::ChunkedBody> source;
  // Large complete objects: the body in an unnamed file (or memfd), sent with sendfile(2) (`body` is then
  // empty: the bytes are kept once).
  std::shared_ptr<const http::FileBody> file;
  std::size_t bytes() const { return file ? file->size : body.size(); }
  bool fresh(Clock::time_point now) const {
    return now < expires && !(stream && stream->failed()) && !(source && source->failed());
  }
  // The body has all arrived: the complete entry replaces this one in the store.
  bool arrived() const { return (stream && stream->complete()) || (source && source->ended()); }
};

class Cache {
 public:
  explicit Cache(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  std::shared_ptr<const Entry> find(const std::string& key, Clock::time_point now);
  // Stores `entry` under `key`, counted at entry->bytes(). An entry replacing a streamed stand-in
  // of the same object (stream or source set) keeps the stand-in's place in the eviction order.
  // An object above a quarter of the bound is not kept (nor an older entry of its key).
  void store(const std::string& key, std::shared_ptr<const Entry> entry);
  // `entry`'s body grew by `n` bytes (a chunked body still arriving): counted, and older entries
  // evicted past the bound. Ignored unless `entry` is what `key` holds (evicted or replaced
  // meanwhile); an entry grown past a quarter of the bound is dropped.
  void grow(const std::string& key, const Entry* entry, std::size_t n);
  // Drops `key` if it still holds `entry` (a streamed entry whose body broke off), releasing its
  // bytes now rather than when a lookup finds it unservable.
  void erase(const std::string& key, const Entry* entry);

  std::size_t bytes() const;
  std::uint64_t evictions() const;

 private:
  struct Front {
    std::unordered_map<std::string, std::shared_ptr<const Entry>> map;
  };
  Front& front();
  struct Slot {
    std::shared_ptr<const Entry> entry;
    std::size_t bytes = 0;  // what the entry counts now (grows with a chunked body)
    std::uint64_t seq = 0;  // its record in order_
  };
  // Evicts oldest first until the bound holds. Caller holds mu_.
  void evict_past_bound();
  void drop(std::unordered_map<std::string, Slot>::iterator it);

  const std::size_t max_bytes_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Slot> map_;
  // Insertion order, for eviction: (key, seq); a record whose key now holds another seq (replaced,
  // dropped) is skipped.
  std::deque<std::pair<std::string, std::uint64_t>> order_;
  std::uint64_t next_seq_ = 0;
  std::size_t bytes_ = 0;
  std::uint64_t evictions_ = 0;
};

}  // namespace sf::edge
