#include "sf/ingest/ingest.h"

#include <boost/asio/post.hpp>

#include "recorder.h"
#include "relay.h"
#include "session.h"
#include "sf/core/log.h"
#include "sf/net/listener.h"

namespace sf::ingest {

IngestMetrics::IngestMetrics(prometheus::Registry& r, const Config& c)
    : connections_total(prometheus::BuildCounter()
                            .Name("streamflex_ingest_connections_total")
                            .Help("RTMP connections accepted")
                            .Register(r)
                            .Add({})),
      connections_active(prometheus::BuildGauge()
                             .Name("streamflex_ingest_connections_active")
                             .Help("RTMP connections open now")
                             .Register(r)
                             .Add({})),
      publishers_active(prometheus::BuildGauge()
                            .Name("streamflex_ingest_publishers_active")
                            .Help("Connections publishing a stream now")
                            .Register(r)
                            .Add({})),
      bytes_received(prometheus::BuildCounter()
                         .Name("streamflex_ingest_received_bytes_total")
                         .Help("Bytes read from RTMP connections")
                         .Register(r)
                         .Add({})),
      handshakes_digest(prometheus::BuildCounter()
                            .Name("streamflex_ingest_handshakes_total")
                            .Help("Completed RTMP handshakes by mode")
                            .Register(r)
                            .Add({{"mode", "digest"}})),
      handshakes_plain(prometheus::BuildCounter()
                           .Name("streamflex_ingest_handshakes_total")
                           .Help("Completed RTMP handshakes by mode")
                           .Register(r)
                           .Add({{"mode", "plain"}})),
      timestamp_jumps(prometheus::BuildCounter()
                          .Name("streamflex_ingest_timestamp_jumps_total")
                          .Help("Publisher timestamp jumps beyond ingest.max_timestamp_jump, by how they were handled "
                                "(ingest.timestamp_jump)")
                          .Register(r)
                          .Add({{"handling", c.timestamp_jump}})),
      closed_family_(prometheus::BuildCounter()
                         .Name("streamflex_ingest_connections_closed_total")
                         .Help("RTMP connections closed, by reason")
                         .Register(r)),
      publish_family_(prometheus::BuildCounter()
                          .Name("streamflex_ingest_publish_total")
                          .Help("Publish requests by result")
                          .Register(r)) {}

prometheus::Counter& IngestMetrics::closed(std::string_view reason) {
  // Reasons come from a fixed set in the session code, so the label stays bounded.
  std::lock_guard lock(mu_);
  auto it = closed_.find(reason);
  if (it == closed_.end())
    it = closed_.emplace(std::string(reason), &closed_family_.Add({{"reason", std::string(reason)}})).first;
  return *it->second;
}

prometheus::Counter& IngestMetrics::publish(std::string_view result) {
  std::lock_guard lock(mu_);
  auto it = publish_.find(result);
  if (it == publish_.end())
    it = publish_.emplace(std::string(result), &publish_family_.Add({{"result", std::string(result)}})).first;
  return *it->second;
}

struct Ingest::Impl {
  Impl(net::IoPool& p, Config c, auth::KeyStore& k, Metrics& m) : pool(p), shared(std::move(c), k, m) {
    if (shared.config.timestamp_jump != "discontinuity" && shared.config.timestamp_jump != "rebase")
      throw std::runtime_error("ingest.timestamp_jump: 'discontinuity' or 'rebase', not '" +
                               shared.config.timestamp_jump + "'");
    m.add_collectable(shared.registry);
    if (!shared.config.record_dir.empty())
      shared.observers.push_back(std::make_shared<Recorder>(shared.config.record_dir));
    if (!shared.config.relay.empty()) shared.observers.push_back(std::make_shared<Relay>(p, shared.config, m));
    auto ep = net::parse_endpoint(shared.config.rtmp_listen);
    if (!ep) throw std::runtime_error("ingest.rtmp_listen: expected host:port, got " + shared.config.rtmp_listen);
    listener = std::make_unique<net::Listener>(pool, *ep, [this](asio::ip::tcp::socket s) { accept(std::move(s)); });
  }

  void accept(asio::ip::tcp::socket s) {
    shared.metrics.connections_total.Increment();
    if (shared.stopping || shared.connections.load() >= shared.config.max_connections) {
      shared.metrics.closed("limit_exceeded").Increment();
      boost::system::error_code ec;
      s.close(ec);
      return;
    }
    ++shared.connections;
    shared.metrics.connections_active.Increment();
    auto session = std::make_shared<Session>(std::move(s), shared);
    {
      std::lock_guard lock(shared.sessions_mu);
      shared.sessions[session->id()] = session;
    }
    Session::start(std::move(session));
  }

  net::IoPool& pool;
  SharedState shared;
  std::unique_ptr<net::Listener> listener;
};

Ingest::Ingest(net::IoPool& pool, Config config, auth::KeyStore& keys, Metrics& metrics)
    : impl_(std::make_shared<Impl>(pool, std::move(config), keys, metrics)) {}

Ingest::~Ingest() {
  impl_->shared.workers.join();
}

void Ingest::add_observer(std::shared_ptr<Observer> observer) {
  impl_->shared.observers.push_back(std::move(observer));
}

void Ingest::start() {
  impl_->listener->start();
  log::info("ingest", "RTMP listening", {{"listen", impl_->shared.config.rtmp_listen}, {"port", port()}});
}

void Ingest::stop() {
  impl_->shared.stopping = true;
  impl_->listener->close();
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(impl_->shared.sessions_mu);
    for (auto& [_, w] : impl_->shared.sessions)
      if (auto s = w.lock()) open.push_back(std::move(s));
  }
  for (auto& s : open) s->close("shutdown");
}

std::uint16_t Ingest::port() const {
  return impl_->listener->port();
}

std::vector<StreamSnapshot> Ingest::streams() const {
  std::vector<StreamSnapshot> out;
  for (auto& s : impl_->shared.registry->live()) out.push_back(s->snapshot());
  return out;
}

int Ingest::disconnect(std::string_view stream, std::string_view key_id, std::string_view reason) {
  int n = 0;
  for (auto& s : impl_->shared.registry->live()) {
    if (s->info().stream != stream || (!key_id.empty() && s->info().key_id != key_id) || !s->stop) continue;
    log::info("ingest", "publisher disconnected by the control plane",
              {{"stream", s->info().stream}, {"key_id", s->info().key_id}, {"reason", reason}});
    s->stop(reason);
    ++n;
  }
  return n;
}

}  // namespace sf::ingest
