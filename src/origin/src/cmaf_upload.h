// The body of one CMAF ingest request, taken as it streams in: a long-running chunked POST of a
// whole fragmented MP4 (DASH-IF Live Media Ingest interface 1), or one object per request. Bytes
// are cut at top-level box boundaries: ftyp+moov go to the ingest as an init segment, each
// moof+mdat pair as a media unit the moment its mdat is complete, a prft as one of its own (the
// producer's time of a fragment); styp, sidx and emsg are dropped. One per request, on its
// connection's thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cmaf_ingest.h"
#include "sf/http/server.h"

namespace sf::origin {

// The stream settings a StreamFlex pusher sends with its objects (push::StreamSettings):
// "StreamFlex-Latency: ll-hls|hls", "StreamFlex-Part-Target: <ms>", "StreamFlex-Segment-Target:
// <ms>", checked with the API's bounds (auth::validate_stream). Absent ones: the origin's
// configuration. Any malformed or out of bounds: none of them, and `why` says what was wrong.
// The request is authenticated (ingest secret) before this is asked.
StreamSettings pushed_settings(const http::Request& req, std::string& why);

// "StreamFlex-Epoch: <n>" on a pushed media object (push::Pusher): its frames' MediaFrame::epoch,
// the source discontinuity they belong to (a timestamp jump at the ingest node). 0 when absent or
// not a 32-bit number.
std::uint32_t pushed_epoch(const http::Request& req);

class CmafUpload final : public http::BodySink {
 public:
  CmafUpload(std::shared_ptr<CmafIngest> ingest, std::string representation, std::size_t max_unit,
             std::string rendition = {}, std::uint32_t epoch = 0)
      : ingest_(std::move(ingest)),
        representation_(std::move(representation)),
        rendition_(std::move(rendition)),
        max_unit_(max_unit),
        epoch_(epoch) {}

  bool on_data(ByteView piece) override;
  http::Response finish() override;

 private:
  // Size of the complete unit at the front of pending_, 0 if more bytes are needed.
  Result<std::size_t> next_unit(bool& is_media, bool& skip) const;

  std::shared_ptr<CmafIngest> ingest_;
  std::string representation_;
  std::string rendition_;
  std::size_t max_unit_;
  std::uint32_t epoch_;  // pushed_epoch of the request
  std::vector<std::byte> pending_;
  std::error_code error_;
  std::size_t units_ = 0;
};

}  // namespace sf::origin
