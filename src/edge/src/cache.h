// The edge's object cache. Entries are immutable once stored and shared by pointer. The shared
// store is bounded in bytes and evicts in insertion order (live media ages out oldest first,
// parts and their segments together); expired entries (playlists past max-age) are never served.
// A per-thread front map answers repeat hits without taking the store's lock.
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
  // written from its pieces with chunked coding (`body` is empty, the entry counts no bytes until
  // the complete entry replaces it). An entry whose source failed is never served.
  std::shared_ptr<const http::ChunkedBody> source;
  // Large complete objects: the body in a sealed memfd, sent with sendfile(2) (`body` is then
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
  void store(const std::string& key, std::shared_ptr<const Entry> entry);

  std::size_t bytes() const;
  std::uint64_t evictions() const;

 private:
  struct Front {
    std::unordered_map<std::string, std::shared_ptr<const Entry>> map;
  };
  Front& front();

  const std::size_t max_bytes_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const Entry>> map_;
  std::deque<std::pair<std::string, std::size_t>> order_;  // insertion order, for eviction
  std::size_t bytes_ = 0;
  std::uint64_t evictions_ = 0;
};

}  // namespace sf::edge
