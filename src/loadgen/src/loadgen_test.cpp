#include "sf/loadgen/loadgen.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <ctime>

#include "sf/http/server.h"
#include "sf/net/io_pool.h"

namespace sf::loadgen {
namespace {

using namespace std::chrono_literals;

// A finished LL-HLS presentation (ENDLIST): viewers join, download what they need and leave, so a
// run ends as soon as they are done.
const char* kMaster =
    "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"main\",DEFAULT=YES,URI=\"audio/index.m3u8\"\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,AUDIO=\"a\"\n"
    "video/index.m3u8\n";

std::string ended_playlist() {
  std::string p =
      "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5\n#EXT-X-MEDIA-SEQUENCE:0\n"
      "#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:00.000Z\n";
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < 4; ++i)
      p += "#EXT-X-PART:DURATION=0.5,URI=\"s" + std::to_string(s) + ".p" + std::to_string(i) + ".m4s\"" +
           (i == 0 ? ",INDEPENDENT=YES\n" : "\n");
    p += "#EXTINF:2.0,\ns" + std::to_string(s) + ".m4s\n";
  }
  return p + "#EXT-X-ENDLIST\n";
}

struct FakeOrigin {
  FakeOrigin() : pool(1), server(pool, net::Endpoint{"127.0.0.1", 0}) {
    server.route_prefix("GET", "/live/", [this](http::Request& req) {
      ++requests;
      const std::string& p = req.path;
      if (p == "/live/x/master.m3u8") return http::Response::text(200, kMaster);
      if (p.ends_with("/index.m3u8")) return http::Response::text(200, ended_playlist());
      if (p.ends_with("init.mp4")) return http::Response::text(200, std::string(500, 'i'));
      if (missing_parts && p.find(".p2.") != std::string::npos) return http::Response::text(404, "gone\n");
      if (p.ends_with(".m4s")) {
        ++parts;
        return http::Response::text(200, std::string(1000, 'm'));
      }
      return http::Response::text(404, "not found\n");
    });
    pool.start();
    server.start();
  }
  ~FakeOrigin() {
    server.stop();
    pool.stop();
    pool.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server.port()) + "/live/x/master.m3u8"; }

  net::IoPool pool;
  http::Server server;
  std::atomic<int> requests{0};
  std::atomic<int> parts{0};
  bool missing_parts = false;
};

// A live LL-HLS rendition on a fast clock: a 0.1 s part is published every 0.1 s, 4 per segment,
// and blocking reloads (_HLS_msn/_HLS_part) are held until the part they ask for is out.
struct LiveOrigin {
  static constexpr double kPart = 0.1;
  static constexpr int kPerSegment = 4;

  // `lag`: blocking reloads are answered this long after their part is published (a proxy that
  // answers late); `same_as`: publish on that origin's clock (the same parts at the same moments).
  explicit LiveOrigin(std::chrono::milliseconds lag = 0ms, const LiveOrigin* same_as = nullptr)
      : lag(lag), pool(1), server(pool, net::Endpoint{"127.0.0.1", 0}) {
    if (same_as) {
      t0 = same_as->t0;
      wall0 = same_as->wall0;
    }
    server.route("GET", "/live/x/master.m3u8", [](http::Request&) {
      return http::Response::text(200,
                                  "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000,RESOLUTION=64x64\nvideo/index.m3u8\n");
    });
    server.route_held(
        "GET", "/live/x/video/index.m3u8", 5s, http::Response::text(503, "late\n"),
        [this](const http::Request& req, http::Responder res) {
          if (!req.has_param("_HLS_msn")) return res(playlist(published()));
          long want = std::stol(req.param("_HLS_msn")) * kPerSegment +
                      (req.has_param("_HLS_part") ? std::stol(req.param("_HLS_part")) : 0);
          if (want < published()) return res(playlist(published()));
          auto timer = std::make_shared<boost::asio::steady_timer>(req.executor, time_of(want + 1) + this->lag);
          timer->async_wait([this, timer, res, want](const boost::system::error_code&) { res(playlist(want + 1)); });
        });
    server.route_prefix("GET", "/live/x/video/", [](http::Request&) {
      return http::Response::text(200, std::string(1000, 'm'));  // init and parts
    });
    pool.start();
    server.start();
  }
  ~LiveOrigin() {
    server.stop();
    pool.stop();
    pool.join();
  }
  // Parts published so far: 8 (two segments) at the start, then one every kPart.
  long published() const {
    return 8 + static_cast<long>(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / kPart);
  }
  std::chrono::steady_clock::time_point time_of(long parts) const {
    return t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>((parts - 8) * kPart));
  }
  http::Response playlist(long n) const {
    std::string p =
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.1\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.3\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-MAP:URI=\"init.mp4\"\n";
    for (long i = 0; i < n; ++i) {
      long msn = i / kPerSegment, idx = i % kPerSegment;
      if (idx == 0) p += "#EXT-X-PROGRAM-DATE-TIME:" + pdt_of(i) + "\n";
      p += "#EXT-X-PART:DURATION=0.1,URI=\"s" + std::to_string(msn) + ".p" + std::to_string(idx) + ".m4s\"" +
           (idx == 0 ? ",INDEPENDENT=YES\n" : "\n");
      if (idx == kPerSegment - 1) p += "#EXTINF:0.4,\ns" + std::to_string(msn) + ".m4s\n";
    }
    return http::Response::text(200, std::move(p));
  }
  // PROGRAM-DATE-TIME of part i's start: part 8 starts at the origin's start, so the newest
  // published part always ends about now.
  std::string pdt_of(long i) const {
    auto at = wall0 + std::chrono::milliseconds(static_cast<long>((i - 8) * kPart * 1000));
    auto secs = std::chrono::time_point_cast<std::chrono::seconds>(at);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at - secs).count();
    std::time_t tt = std::chrono::system_clock::to_time_t(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(ms));
    return buf;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server.port()) + "/live/x/master.m3u8"; }

  std::chrono::milliseconds lag;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point wall0 = std::chrono::system_clock::now();
  net::IoPool pool;
  http::Server server;
};

Options options(const std::string& url) {
  Options o;
  o.url = url;
  o.viewers = 3;
  o.duration = 5s;
  o.progress_every = 0ms;
  return o;
}

TEST(Run, ViewersJoinPartHoldBackFromTheEndAndDownloadToTheEnd) {
  FakeOrigin origin;
  auto s = run(options(origin.url()), nullptr);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->started, 3u);
  EXPECT_EQ(s->ok, 3u);
  EXPECT_EQ(s->failed, 0u);
  EXPECT_EQ(s->error_count(), 0u);
  // 1.5 s back from the end is s2.p1, not independent: each starts at s2.p0 and takes 4 parts.
  EXPECT_EQ(s->parts, 12u);
  EXPECT_EQ(origin.parts.load(), 12);
  EXPECT_EQ(s->inits, 3u);
  EXPECT_EQ(s->playlists, 3u);
  EXPECT_EQ(s->startup.count, 3u);
  EXPECT_EQ(s->requests, static_cast<std::uint64_t>(origin.requests.load()));
  EXPECT_EQ(s->bytes, 3u * (std::string(kMaster).size() + ended_playlist().size() + 500 + 4 * 1000));
}

TEST(Run, AudioRenditionIsFollowedToo) {
  FakeOrigin origin;
  auto o = options(origin.url());
  o.audio = true;
  auto s = run(o, nullptr);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->started, 3u);
  EXPECT_EQ(s->parts, 24u);  // video and audio each from s2.p0
  EXPECT_EQ(s->playlists, 6u);
}

TEST(Run, PollModeStartsThreeSegmentsFromTheEnd) {
  FakeOrigin origin;
  auto o = options(origin.url());
  o.mode = Mode::poll;
  auto s = run(o, nullptr);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->started, 3u);
  EXPECT_EQ(s->segments, 9u);
  EXPECT_EQ(s->parts, 0u);
}

TEST(Run, MissingPartsAreCountedByKind) {
  FakeOrigin origin;
  origin.missing_parts = true;
  auto s = run(options(origin.url()), nullptr);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->errors["http_404"], 3u);
  EXPECT_EQ(s->parts, 9u);
}

TEST(Run, UnreachableOriginFailsEveryViewerWithinTheDuration) {
  auto o = options("http://127.0.0.1:1/live/x/master.m3u8");
  o.duration = 1500ms;
  auto t0 = std::chrono::steady_clock::now();
  auto s = run(o, nullptr);
  ASSERT_TRUE(s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(s->started, 0u);
  EXPECT_EQ(s->failed, 3u);
  EXPECT_GT(s->errors["io_error"], 0u);
}

TEST(Run, LiveViewersFollowBlockingReloadsPartByPart) {
  LiveOrigin origin;
  auto o = options(origin.url());
  o.viewers = 5;
  o.duration = 2s;
  auto s = run(o, nullptr);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->started, 5u);
  EXPECT_EQ(s->failed, 0u);
  EXPECT_EQ(s->error_count(), 0u) << format_summary(*s);
  // ~20 parts a viewer in 2 s (at a 0.1 s pace), plus the few it joined with.
  EXPECT_GE(s->parts, 5u * 12);
  EXPECT_LE(s->parts, 5u * 30);
  // One blocking reload per part once caught up; each new part fetched right after its answer.
  EXPECT_GE(s->part_delivery.count, 5u * 10);
  EXPECT_LT(s->part_delivery.p50, 100.0);
  // Playback runs about PART-HOLD-BACK (0.3 s) behind the newest part.
  EXPECT_GT(s->live_edge.p50, 200.0);
  EXPECT_LT(s->live_edge.p50, 1000.0);
}

TEST(Run, ReferenceMeasuresPartsFromTheirListingAtTheOrigin) {
  LiveOrigin origin;
  auto o = options(origin.url());
  o.viewers = 4;
  o.duration = 2s;
  o.reference = origin.url();
  auto s = run(o, nullptr);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->error_count(), 0u) << format_summary(*s);
  EXPECT_EQ(s->reference_errors, 0u);
  // Viewers on the origin itself: their parts arrive right after the reference saw them listed.
  EXPECT_GE(s->part_since_origin.count, s->part_delivery.count * 9 / 10) << format_summary(*s);
  EXPECT_LT(s->part_since_origin.p50, 50.0) << format_summary(*s);
}

TEST(Run, ReferenceShowsWhatALateProxyAddsAndPartDeliveryDoesNot) {
  LiveOrigin origin;
  LiveOrigin late(60ms, &origin);  // the same parts at the same moments, its reloads answered 60 ms late
  // (less than a part: each answer lists just the part asked for)
  auto o = options(late.url());
  o.viewers = 4;
  o.duration = 2s;
  o.reference = origin.url();
  auto s = run(o, nullptr);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->error_count(), 0u) << format_summary(*s);
  EXPECT_GE(s->part_since_origin.count, s->part_delivery.count * 9 / 10) << format_summary(*s);
  EXPECT_LT(s->part_delivery.p50, 50.0) << format_summary(*s);  // from the late answer: as prompt as ever
  EXPECT_GE(s->part_since_origin.p50, 55.0) << format_summary(*s);
  EXPECT_LT(s->part_since_origin.p50, 100.0) << format_summary(*s);
}

TEST(Run, RefusesUrlsItCannotUse) {
  EXPECT_EQ(run(options("https://example.com/x.m3u8"), nullptr).error(), errc::unsupported);
  auto o = options("http://127.0.0.1:1/x.m3u8");
  o.viewers = 0;
  EXPECT_EQ(run(o, nullptr).error(), errc::invalid_argument);
}

TEST(Summary, FormatsAndSerializes) {
  Summary s;
  s.viewers = 2;
  s.started = 2;
  s.ok = 2;
  s.seconds = 10;
  s.requests = 100;
  s.errors["timeout"] = 1;
  auto text = format_summary(s);
  EXPECT_NE(text.find("started 2  ok 2  failed 0"), std::string::npos) << text;
  EXPECT_NE(text.find("timeout 1"), std::string::npos) << text;
  auto j = to_json(s);
  EXPECT_EQ(j["viewers"]["started"], 2);
  EXPECT_EQ(j["requests_per_s"], 10.0);
  EXPECT_EQ(j["error_count"], 1);
}

}  // namespace
}  // namespace sf::loadgen
