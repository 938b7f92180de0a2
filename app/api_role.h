// Wiring of the control plane into the process: the dashboard directory, the bootstrap admin API
// key, the webhook secret, ingest's live state for the API and ingest's publish ends for webhooks.
// Startup only (main thread), except what the returned objects document.
#pragma once

#include <memory>
#include <string>

#include "sf/api/api.h"
#include "sf/api/webhooks.h"
#include "sf/auth/store.h"
#include "sf/ingest/ingest.h"

namespace sf::app {

// The dashboard's directory: configured, or web/dashboard/dist of the source tree this binary was
// built in, or ./web/dashboard/dist; "" if none.
std::string find_dashboard_root(const std::string& configured);

// On first start, creates an admin API key and writes it to <store dir>/admin-api-key (mode
// 0600); later starts leave the file alone. Logs only the path. Throws if the file cannot be
// written.
void ensure_admin_api_key(auth::Store& store, const std::string& store_path);

// A secret kept in `path` (mode 0600), created random on first use. Throws on I/O errors.
std::string load_or_create_secret(const std::string& path);

// Live state of the in-process ingest (Ingest::streams() is thread-safe).
api::LiveSource ingest_live_source(const ingest::Ingest& ingest);

// Sends on_publish_done when a publish ends (notify() does not block the I/O thread).
std::shared_ptr<ingest::Observer> make_webhook_observer(api::Webhooks& hooks);

}  // namespace sf::app
