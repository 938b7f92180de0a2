// In-process links between roles in `streamflex all`: the same interfaces the network hops use.
#pragma once

#include <memory>

#include "sf/ingest/ingest.h"
#include "sf/origin/origin.h"

namespace sf::app {

// Feeds every publish that ingest accepts into the origin's packager (source passthrough).
std::shared_ptr<ingest::Observer> make_origin_feeder(origin::Origin& origin);

}  // namespace sf::app
