#include "cmaf_upload.h"

#include <charconv>
#include <cstring>

#include "sf/auth/store.h"
#include "sf/core/byte_reader.h"

namespace sf::origin {
namespace {

struct BoxHead {
  std::uint64_t size = 0;
  std::string_view type;
};

// A top-level box header at `at`, or nullopt if fewer than its header bytes are there.
Result<std::optional<BoxHead>> box_at(ByteView in, std::size_t at) {
  if (in.size() < at + 8) return std::optional<BoxHead>{};
  ByteReader r(in.subspan(at));
  BoxHead h;
  h.size = *r.u32();
  h.type = as_chars(*r.bytes(4));
  if (h.size == 1) {
    if (in.size() < at + 16) return std::optional<BoxHead>{};
    h.size = *r.u64();
    if (h.size < 16) return fail(errc::malformed);
  } else if (h.size < 8) {
    return fail(errc::malformed);  // size 0 ("to the end") cannot be cut from a live stream
  }
  return std::optional<BoxHead>{h};
}

}  // namespace

StreamSettings pushed_settings(const http::Request& req, std::string& why) {
  auto latency = req.header("streamflex-latency");
  auto part = req.header("streamflex-part-target");
  auto segment = req.header("streamflex-segment-target");
  StreamSettings out;
  if (latency.empty() && part.empty() && segment.empty()) return out;
  auth::StreamRecord check;  // the API's defaults where a header is absent
  check.name = "pushed";
  if (!latency.empty()) check.latency = std::string(latency);
  auto number = [&why](std::string_view text, const char* name, std::int64_t& into) {
    if (text.empty()) return;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), into);
    if (ec != std::errc{} || end != text.data() + text.size()) why = std::string(name) + ": not a number";
  };
  number(part, "StreamFlex-Part-Target", check.part_target_ms);
  number(segment, "StreamFlex-Segment-Target", check.segment_target_ms);
  if (!why.empty() || !auth::validate_stream(check, why)) return {};
  out.low_latency = check.latency != "hls";
  if (!part.empty()) out.part_target = std::chrono::milliseconds(check.part_target_ms);
  if (!segment.empty()) out.segment_target = std::chrono::milliseconds(check.segment_target_ms);
  return out;
}

std::uint32_t pushed_epoch(const http::Request& req) {
  auto text = req.header("streamflex-epoch");
  std::uint32_t epoch = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), epoch);
  return ec == std::errc{} && end == text.data() + text.size() ? epoch : 0;
}

Result<std::size_t> CmafUpload::next_unit(bool& is_media, bool& skip) const {
  ByteView in(pending_.data(), pending_.size());
  auto first = box_at(in, 0);
  if (!first) return std::unexpected(first.error());
  if (!*first) return 0;
  const BoxHead& h = **first;
  if (h.size > max_unit_) return fail(errc::message_too_large);
  is_media = h.type == "moof";
  skip = h.type == "styp" || h.type == "sidx" || h.type == "emsg" || h.type == "free" || h.type == "mfra";
  if (h.type == "ftyp") {
    // An init segment is ftyp followed by moov: wait for both.
    if (in.size() < h.size) return 0;
    auto moov = box_at(in, h.size);
    if (!moov) return std::unexpected(moov.error());
    if (!*moov) return 0;
    if ((*moov)->type != "moov") return fail(errc::malformed);
    std::uint64_t total = h.size + (*moov)->size;
    if (total > max_unit_) return fail(errc::message_too_large);
    return in.size() >= total ? static_cast<std::size_t>(total) : 0;
  }
  if (is_media) {
    // A moof is only useful with the mdat that follows it.
    if (in.size() < h.size) return 0;
    auto mdat = box_at(in, h.size);
    if (!mdat) return std::unexpected(mdat.error());
    if (!*mdat) return 0;
    if ((*mdat)->type != "mdat") return fail(errc::malformed);
    std::uint64_t total = h.size + (*mdat)->size;
    if (total > max_unit_) return fail(errc::message_too_large);
    return in.size() >= total ? static_cast<std::size_t>(total) : 0;
  }
  return in.size() >= h.size ? static_cast<std::size_t>(h.size) : 0;
}

bool CmafUpload::on_data(ByteView piece) {
  if (error_) return false;
  pending_.insert(pending_.end(), piece.begin(), piece.end());
  for (;;) {
    bool is_media = false, skip = false;
    auto n = next_unit(is_media, skip);
    if (!n) {
      error_ = n.error();
      return false;
    }
    if (*n == 0) return true;
    if (!skip) {
      // The unit gets its own block: frames share it for as long as the window holds them.
      MutableBytes block(*n);
      std::memcpy(block.data(), pending_.data(), *n);
      if (auto r = ingest_->push(representation_, Bytes::freeze(std::move(block)), rendition_, epoch_); !r) {
        error_ = r.error();
        return false;
      }
      ++units_;
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(*n));
  }
}

http::Response CmafUpload::finish() {
  if (error_) return http::Response::text(400, "CMAF refused: " + error_.message() + "\n");
  if (!pending_.empty()) return http::Response::text(400, "CMAF refused: the body ended inside a box\n");
  return http::Response::text(units_ ? 201 : 204, "");
}

}  // namespace sf::origin
