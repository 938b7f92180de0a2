// What every ingest session shares: configuration snapshot, key store, registry of live streams,
// observers, metrics and the worker pool for blocking calls. Built once at startup; the members a
// session touches are either immutable after start or thread-safe themselves.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "registry.h"
#include "sf/ingest/ingest.h"

namespace sf::ingest {

struct IngestMetrics {
  IngestMetrics(prometheus::Registry& r, const Config& c);
  prometheus::Counter& closed(std::string_view reason);
  prometheus::Counter& publish(std::string_view result);

  prometheus::Counter& connections_total;
  prometheus::Gauge& connections_active;
  prometheus::Gauge& publishers_active;
  prometheus::Counter& bytes_received;
  prometheus::Counter& handshakes_digest;
  prometheus::Counter& handshakes_plain;
  prometheus::Counter& timestamp_jumps;  // labelled with ingest.timestamp_jump

 private:
  prometheus::Family<prometheus::Counter>& closed_family_;
  prometheus::Family<prometheus::Counter>& publish_family_;
  std::mutex mu_;
  std::map<std::string, prometheus::Counter*, std::less<>> closed_, publish_;
};

class Session;

struct SharedState {
  SharedState(Config c, auth::KeyStore& k, Metrics& m)
      : config(std::move(c)),
        keys(k),
        registry(std::make_shared<Registry>(config.max_stream_labels)),
        metrics(m.registry(), config),
        workers(2) {}

  const Config config;
  auth::KeyStore& keys;
  std::shared_ptr<Registry> registry;
  IngestMetrics metrics;
  std::vector<std::shared_ptr<Observer>> observers;
  boost::asio::thread_pool workers;  // key store lookups and other blocking calls
  std::atomic<std::uint64_t> next_session_id{1};
  std::atomic<std::int64_t> connections{0};
  std::atomic<bool> stopping{false};

  // Open sessions, for shutdown; touched on accept, close and stop only.
  std::mutex sessions_mu;
  std::map<std::uint64_t, std::weak_ptr<Session>> sessions;
};

}  // namespace sf::ingest
