#include "sf/push/cmaf_pusher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "sf/cmaf/demux.h"
#include "sf/http/server.h"

namespace sf::push {
namespace {

using namespace std::chrono_literals;

struct Seen {
  std::string method, path, auth;
  std::string body;
  std::string settings;  // the StreamFlex-* headers, "latency part segment"
  std::string epoch;     // StreamFlex-Epoch
};

// A fake origin: records every ingest request; answers 503 to the first `fail_first` POSTs, and
// holds nothing (answers at once) unless `stall` is set, when POSTs get no answer for 3 s.
struct FakeOrigin {
  explicit FakeOrigin(int fail_first = 0) : pool(1), server(pool, net::Endpoint{"127.0.0.1", 0}), fails(fail_first) {
    server.body_limit("/ingest/", 4 * 1024 * 1024);
    auto record = [this](http::Request& req) {
      std::lock_guard lk(mu);
      seen.push_back({req.method, req.path, req.header("authorization"), req.body,
                      std::string(req.header("streamflex-latency")) + " " +
                          std::string(req.header("streamflex-part-target")) + " " +
                          std::string(req.header("streamflex-segment-target")),
                      std::string(req.header("streamflex-epoch"))});
      if (req.method == "POST" && fails > 0) {
        --fails;
        return http::Response::text(503, "not now\n");
      }
      return http::Response::text(req.method == "DELETE" ? 204 : 201, "");
    };
    server.route_prefix("POST", "/ingest/", record);
    server.route_prefix("DELETE", "/ingest/", record);
    pool.start();
    server.start();
  }
  ~FakeOrigin() {
    server.stop();
    pool.stop();
    pool.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server.port()); }
  std::vector<Seen> requests() {
    std::lock_guard lk(mu);
    return seen;
  }
  bool deleted() {
    std::lock_guard lk(mu);
    return !seen.empty() && seen.back().method == "DELETE";
  }

  net::IoPool pool;
  http::Server server;
  std::mutex mu;
  std::vector<Seen> seen;
  int fails;
};

media::TrackConfig aac_track() {
  media::TrackConfig t;
  t.track_id = 2;
  t.type = media::MediaType::audio;
  t.codec = media::Codec::aac;
  t.timescale = 48000;
  const std::byte asc[] = {std::byte{0x11}, std::byte{0x90}};  // AAC-LC, 48 kHz, stereo
  t.record = Bytes::copy_of(ByteView(asc, 2));
  media::AudioConfig a;
  a.codec = media::Codec::aac;
  a.object_type = 2;
  a.sample_rate = 48000;
  a.channels = 2;
  a.codec_string = "mp4a.40.2";
  t.audio = a;
  t.bandwidth = 128000;
  return t;
}

media::MediaFrame aac_frame(int i) {
  std::string payload(200 + i % 7, static_cast<char>('a' + i % 26));
  return {2, media::MediaType::audio,          media::Codec::aac, std::int64_t(i) * 1024, std::int64_t(i) * 1024, true,
          0, Bytes::copy_of(as_bytes(payload))};
}

template <class F>
bool wait_for(F&& pred, std::chrono::milliseconds limit = 10s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// Frames back from what the fake origin received for one representation.
std::vector<media::MediaFrame> frames_of(const std::vector<Seen>& seen, const std::string& path, int* inits) {
  std::vector<media::MediaFrame> out;
  std::optional<cmaf::InitSegment> init;
  for (auto& s : seen) {
    if (s.method != "POST" || s.path != path) continue;
    auto body = Bytes::copy_of(as_bytes(s.body));
    if (s.body.size() >= 8 && s.body.substr(4, 4) == "ftyp") {
      auto parsed = cmaf::parse_init_segment(body);
      EXPECT_TRUE(parsed);
      if (parsed) init = std::move(*parsed);
      ++*inits;
      continue;
    }
    EXPECT_TRUE(init) << "media before its init segment";
    if (!init) continue;
    auto frames = cmaf::parse_fragments(body, *init);
    EXPECT_TRUE(frames);
    if (frames) out.insert(out.end(), frames->begin(), frames->end());
  }
  return out;
}

// A pusher on its own I/O thread pushing to a FakeOrigin (whose first `failures` POSTs get 503),
// with `adjust` applied to its configuration; stopped, and its thread joined, at the end.
struct PushRig {
  explicit PushRig(const std::function<void(Config&)>& adjust = {}, int failures = 0) : origin(failures), pool(1) {
    Config cfg;
    cfg.origin_url = origin.url();
    cfg.secret = "sec";
    if (adjust) adjust(cfg);
    pusher.emplace(pool, cfg, metrics);
    pool.start();
  }
  ~PushRig() {
    pusher->stop();
    pool.join();
  }
  FakeOrigin origin;
  net::IoPool pool;
  Metrics metrics;
  std::optional<Pusher> pusher;
};

TEST(Pusher, PushesInitThenChunksInOrderAndEndsTheStream) {
  PushRig rig;
  auto& origin = rig.origin;
  auto& pusher = *rig.pusher;
  {
    auto sink = pusher.open_stream("s1");
    sink->on_track(aac_track());
    for (int i = 0; i < 100; ++i) sink->on_frame(aac_frame(i));
  }  // released: the stream ends
  ASSERT_TRUE(wait_for([&] { return origin.deleted(); })) << "no DELETE at the end of the stream";
  auto seen = origin.requests();
  EXPECT_EQ(seen.back().path, "/ingest/s1/");
  for (auto& s : seen) EXPECT_EQ(s.auth, "Bearer sec");
  int inits = 0;
  auto frames = frames_of(seen, "/ingest/s1/Streams(audio)", &inits);
  EXPECT_EQ(inits, 1);
  ASSERT_EQ(frames.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(frames[i].dts, i * 1024);
    EXPECT_EQ(frames[i].data.size(), aac_frame(i).data.size());
  }
  // 200 ms chunks of 21.3 ms frames: about ten frames per request, not one request per frame.
  EXPECT_GE(seen.size(), 1u + 9u + 1u);
  EXPECT_LE(seen.size(), 1u + 12u + 1u);
  auto init = cmaf::parse_init_segment(Bytes::copy_of(as_bytes(seen.front().body)));
  ASSERT_TRUE(init);
  EXPECT_EQ(init->tracks[0].bandwidth, 128000u);  // the declared rate travels in btrt
  auto totals = pusher.totals();
  EXPECT_EQ(totals.objects, seen.size() - 1);
  EXPECT_EQ(totals.failures, 0u);
  EXPECT_EQ(totals.dropped, 0u);
}

TEST(Pusher, EveryObjectCarriesTheStreamsSettings) {
  PushRig rig;
  auto& origin = rig.origin;
  auto& pusher = *rig.pusher;
  {
    auto sink = pusher.open_stream("s1", nullptr, StreamSettings{"hls", 300, 1000});
    sink->on_track(aac_track());
    for (int i = 0; i < 30; ++i) sink->on_frame(aac_frame(i));
    auto plain = pusher.open_stream("s2");
    plain->on_track(aac_track());
    for (int i = 0; i < 30; ++i) plain->on_frame(aac_frame(i));
  }
  ASSERT_TRUE(wait_for([&] {
    int deletes = 0;
    for (auto& s : origin.requests()) deletes += s.method == "DELETE";
    return deletes == 2;
  }));
  int s1 = 0, s2 = 0;
  for (auto& s : origin.requests()) {
    if (s.method != "POST") continue;
    if (s.path.starts_with("/ingest/s1/")) {
      EXPECT_EQ(s.settings, "hls 300 1000") << s.path;
      ++s1;
    } else {
      EXPECT_EQ(s.settings, "  ") << s.path;  // none set: none sent
      ++s2;
    }
  }
  EXPECT_GE(s1, 2);  // the init and the chunks
  EXPECT_GE(s2, 2);
}

TEST(Pusher, AnEpochStartsANewChunkSentWithItsEpoch) {
  PushRig rig([](Config& cfg) { cfg.chunk_duration = 10s; });  // one chunk per epoch, not per duration
  auto& origin = rig.origin;
  auto& pusher = *rig.pusher;
  {
    auto sink = pusher.open_stream("s1");
    sink->on_track(aac_track());
    for (int i = 0; i < 30; ++i) {
      auto f = aac_frame(i);
      f.epoch = i >= 17 ? 1 : 0;  // the jump's first frame is no keyframe boundary of its own
      sink->on_frame(f);
    }
  }
  ASSERT_TRUE(wait_for([&] { return origin.deleted(); }));
  std::vector<std::string> epochs;
  std::vector<std::int64_t> first_dts;
  std::optional<cmaf::InitSegment> init;
  for (auto& s : origin.requests()) {
    if (s.method != "POST") continue;
    auto body = Bytes::copy_of(as_bytes(s.body));
    if (s.body.substr(4, 4) == "ftyp") {
      init = cmaf::parse_init_segment(body).value();
      EXPECT_EQ(s.epoch, "");
      continue;
    }
    ASSERT_TRUE(init);
    auto frames = cmaf::parse_fragments(body, *init);
    ASSERT_TRUE(frames && !frames->empty());
    epochs.push_back(s.epoch);
    first_dts.push_back(frames->front().dts);
  }
  EXPECT_EQ(epochs, (std::vector<std::string>{"", "1"}));  // 0 is not sent
  EXPECT_EQ(first_dts, (std::vector<std::int64_t>{0, 17 * 1024}));
}

TEST(Pusher, EachChunkCarriesItsArrivalByTheAnchorInAPrft) {
  PushRig rig;
  auto& origin = rig.origin;
  auto& pusher = *rig.pusher;
  auto anchor = std::make_shared<ArrivalAnchor>();
  const std::int64_t arrived = 1'700'000'000'250;  // media time 0.5 s arrived then
  anchor->mark(0.5, arrived);
  anchor->mark(1.0, arrived + 900);  // arrived later than the first mark implies: not the anchor
  {
    auto sink = pusher.open_stream("s1", anchor);
    sink->on_track(aac_track());
    for (int i = 0; i < 50; ++i) sink->on_frame(aac_frame(i));
  }
  ASSERT_TRUE(wait_for([&] { return origin.deleted(); }));
  int chunks = 0;
  for (auto& s : origin.requests()) {
    if (s.method != "POST" || s.body.size() < 8 || s.body.substr(4, 4) == "ftyp") continue;
    ++chunks;
    ASSERT_GE(s.body.size(), 40u);
    auto u = [&](std::size_t at, int n) {
      std::uint64_t v = 0;
      for (int i = 0; i < n; ++i) v = v << 8 | static_cast<std::uint8_t>(s.body[at + std::size_t(i)]);
      return v;
    };
    EXPECT_EQ(u(0, 4), 32u);
    EXPECT_EQ(s.body.substr(4, 4), "prft");
    EXPECT_EQ(u(8, 4), 0x01000018u);  // version 1, flags 24
    EXPECT_EQ(u(12, 4), 2u);          // the track
    EXPECT_EQ(s.body.substr(36, 4), "moof");
    // NTP time of the chunk's first sample = the anchor's arrival + (its media time - 0.5 s).
    std::uint64_t ntp = u(16, 8), media = u(24, 8);
    double unix_ms = (double(ntp >> 32) - 2208988800.0) * 1000 + double(ntp & 0xffffffffu) * 1000 / 4294967296.0;
    double expect = double(arrived) + (double(media) / 48000 - 0.5) * 1000;
    EXPECT_NEAR(unix_ms, expect, 1.5) << media;
  }
  EXPECT_GE(chunks, 4);
}

TEST(Pusher, AWithdrawnTrackEndsItsRepresentationAfterItsLastChunk) {
  PushRig rig;
  auto& origin = rig.origin;
  auto& pusher = *rig.pusher;
  {
    auto sink = pusher.open_stream("s1");
    sink->on_track(aac_track());
    for (int i = 0; i < 30; ++i) sink->on_frame(aac_frame(i));
    sink->on_withdraw(2);  // a dropped rung
  }
  auto ended = [&] {
    auto seen = origin.requests();
    return std::any_of(seen.begin(), seen.end(),
                       [](auto& s) { return s.method == "DELETE" && s.path == "/ingest/s1/"; });
  };
  ASSERT_TRUE(wait_for(ended));
  auto seen = origin.requests();
  std::vector<std::string> order;
  for (auto& s : seen) order.push_back(s.method + " " + s.path);
  auto rep_delete = std::find(order.begin(), order.end(), "DELETE /ingest/s1/Streams(audio)");
  ASSERT_NE(rep_delete, order.end());
  EXPECT_EQ(std::count(order.begin(), order.end(), "DELETE /ingest/s1/Streams(audio)"), 1);
  // After every chunk of the representation, before the end of the stream.
  EXPECT_EQ(std::find(rep_delete, order.end(), "POST /ingest/s1/Streams(audio)"), order.end());
  EXPECT_EQ(order.back(), "DELETE /ingest/s1/");
  int inits = 0;
  EXPECT_EQ(frames_of(seen, "/ingest/s1/Streams(audio)", &inits).size(), 30u);
  EXPECT_EQ(pusher.totals().dropped, 0u);
}

TEST(Pusher, RetriesAFailingOriginAndSendsTheInitAgain) {
  PushRig rig([](Config& cfg) { cfg.max_backoff = 200ms; }, 3);  // the first three POSTs get 503
  auto& origin = rig.origin;
  auto& pusher = *rig.pusher;
  {
    auto sink = pusher.open_stream("s2");
    sink->on_track(aac_track());
    for (int i = 0; i < 50; ++i) sink->on_frame(aac_frame(i));
  }
  ASSERT_TRUE(wait_for([&] { return origin.deleted(); }));
  int inits = 0;
  auto frames = frames_of(origin.requests(), "/ingest/s2/Streams(audio)", &inits);
  EXPECT_GE(inits, 1);
  // Audio chunks all start with a keyframe: nothing had to be skipped, every frame arrived.
  EXPECT_EQ(frames.size(), 50u);
  EXPECT_EQ(pusher.totals().failures, 3u);
  EXPECT_NE(rig.metrics.serialize().find("streamflex_transcode_push_failures_total 3"), std::string::npos);
}

TEST(Pusher, AnOriginThatIsDownCostsDroppedChunksNotMemory) {
  net::IoPool pool(1);
  Metrics metrics;
  Config cfg;
  cfg.origin_url = "http://127.0.0.1:1";  // nothing listens: every connect fails
  cfg.queue_bytes = 64 * 1024;
  cfg.max_backoff = 100ms;
  Pusher pusher(pool, cfg, metrics);
  pool.start();
  auto sink = pusher.open_stream("s3");
  sink->on_track(aac_track());
  for (int i = 0; i < 3000; ++i) sink->on_frame(aac_frame(i));  // ~700 KB of media
  ASSERT_TRUE(wait_for([&] { return pusher.totals().dropped > 0 && pusher.totals().failures > 0; }));
  EXPECT_LE(pusher.totals().queue_bytes, 64u * 1024);
  EXPECT_EQ(pusher.totals().objects, 0u);
  pusher.stop();
  sink.reset();
  pool.join();  // stop() ends every request and wait: the pool runs out of work
}

TEST(Pusher, RefusesAnOriginUrlItCannotUse) {
  net::IoPool pool(1);
  Metrics metrics;
  for (auto url : {"", "https://o:443", "ftp://o", "http://o:80/path", "http://"}) {
    Config cfg;
    cfg.origin_url = url;
    EXPECT_THROW(Pusher(pool, cfg, metrics), std::invalid_argument) << url;
  }
}

}  // namespace
}  // namespace sf::push
