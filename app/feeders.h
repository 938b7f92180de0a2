// In-process links between roles in `streamflex all`: the same interfaces the network hops use.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "sf/ingest/ingest.h"
#include "sf/origin/origin.h"
#include "sf/transcode/transcoder.h"

namespace sf::app {

// Which transcoding profile a publish gets ("" = the configured default). Called on the
// publisher's I/O thread at publish start; must not block for long.
using ProfileFor = std::function<std::string(const ingest::PublishInfo&)>;

// Feeds every publish that ingest accepts into the origin's packager: through the transcoder's
// ladder when one is given (its profile per stream from `profile_for`), else untouched. The
// stream's latency settings (PublishInfo, from its record at the key check) set the origin
// stream's mode and targets and the transcoder's keyframe grid.
std::shared_ptr<ingest::Observer> make_origin_feeder(origin::Origin& origin,
                                                     transcode::Transcoder* transcoder = nullptr,
                                                     ProfileFor profile_for = nullptr);

// The transcoder's output into an origin stream.
std::shared_ptr<transcode::Sink> make_origin_sink(std::unique_ptr<origin::StreamSink> sink);

}  // namespace sf::app
