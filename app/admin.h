// Routes every role serves on its admin listener: /metrics (Prometheus text), /healthz (the
// process runs), /readyz (it takes traffic: 503 until started and while shutting down), and the
// ingest status route /ingest/streams (JSON) when the ingest role runs.
#pragma once

#include <atomic>

#include "sf/core/metrics.h"
#include "sf/http/server.h"
#include "sf/ingest/ingest.h"

namespace sf::app {

void add_admin_routes(http::Server& server, Metrics& metrics, const std::atomic<bool>& ready,
                      const ingest::Ingest* ingest);

}  // namespace sf::app
