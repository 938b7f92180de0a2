// CMAF pushed over HTTP (DASH-IF Live Media Ingest interface 1, one request per object; ffmpeg's
// dash and hls muxers with -method PUT): init segments and media segments per representation,
// turned back into tracks and frames for the stream's packager. Frames of the representations
// are interleaved by decode time (a segment of one track may arrive before the other's), so the
// packager sees one timeline; a track that stops sending is not waited for past `max_wait`, and
// not at all once its pusher ended its representation (DELETE of Streams(<name>): a transcoder
// dropped the rung) until it sends again.
// Each track's edit list (AAC priming, B-frame delay) is applied, so tracks stay in sync.
// A ProducerReferenceTimeBox (prft, 14496-12 8.16.5) before a fragment marks `arrival` with the
// wall clock its producer gives for a media time (the standalone transcoder: when the source's
// media arrived), so program date time follows the source, not the push's arrival here.
// One per pushed stream; thread-safe (requests of one stream may arrive on several connections).
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "sf/cmaf/demux.h"
#include "sf/core/result.h"
#include "sf/origin/origin.h"

namespace sf::origin {

class CmafIngest {
 public:
  CmafIngest(std::unique_ptr<StreamSink> sink, double max_wait_seconds = 4.0,
             std::shared_ptr<ArrivalClock> arrival = nullptr)
      : sink_(std::move(sink)), max_wait_(max_wait_seconds), arrival_(std::move(arrival)) {}
  ~CmafIngest() { release(true); }  // what is still queued goes out before the stream ends

  // One pushed object. `representation` names the track it belongs to (from the request path).
  // Init segments (moov) set the representation's tracks; media segments feed frames. A non-empty
  // `rendition` names the video tracks' renditions (a ladder rung, "720p"); their declared peak
  // rate comes from the init segment's btrt (TrackConfig::bandwidth). A media segment's frames
  // carry `epoch` (the pusher's source discontinuity, StreamFlex-Epoch), counted from the first
  // one this stream was pushed: an origin that restarted after a jump starts at 0 as the packager
  // does, and the next jump is a discontinuity.
  Result<void> push(const std::string& representation, const Bytes& body, const std::string& rendition = {},
                    std::uint32_t epoch = 0);
  std::chrono::steady_clock::time_point last_push() const;
  // The representation stopped: its tracks are not waited for until it pushes again.
  void end_representation(const std::string& representation);

 private:
  struct Track {
    std::uint32_t track_id = 0;  // as the packager sees it: unique within the stream
    media::TrackConfig config;
    std::int64_t shift = 0;  // added to the pushed times: the edit list's offset plus a fixed headroom
    std::deque<media::MediaFrame> queue;
    double last_seconds = -1;
    bool ended = false;  // its representation was ended: not waited for
  };
  struct Representation {
    cmaf::InitSegment init;
    std::map<std::uint32_t, std::uint32_t> ids;  // track_ID in the file -> Track::track_id
  };
  void release(bool flush);
  Result<void> producer_reference_time(const Representation& rep, const Bytes& body);
  static double seconds(const media::MediaFrame& f, const media::TrackConfig& c) { return double(f.dts) / c.timescale; }

  mutable std::mutex mu_;
  std::unique_ptr<StreamSink> sink_;
  double max_wait_;
  std::shared_ptr<ArrivalClock> arrival_;  // the stream's packager reads it; null: prft ignored
  std::map<std::string, Representation> representations_;
  std::map<std::uint32_t, Track> tracks_;
  std::uint32_t next_track_id_ = 1;
  std::optional<std::uint32_t> epoch_base_;  // the epoch of the first media pushed
  std::chrono::steady_clock::time_point last_push_ = std::chrono::steady_clock::now();
};

// The representation key of an ingest path: "stream0" in ffmpeg's "init-stream0.m4s" and
// "chunk-stream0-00012.m4s", the Streams(<id>) of DASH-IF ingest, else the file's directory.
std::string representation_of(std::string_view path);

// The rendition name a path declares: <name> of a DASH-IF "Streams(<name>)" when it is 1-32 of
// [A-Za-z0-9_.-] (it becomes a URL path component), else "" (ffmpeg's "stream0" names nothing).
std::string rendition_of(std::string_view path);

}  // namespace sf::origin
