#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "sf/auth/token.h"

namespace sf::auth {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

std::vector<TokenKey> keys() {
  return {{"k2", "second-secret-0123456789"}, {"k1", "first-secret-0123456789"}};
}

TEST(ViewerToken, IssuedTokenVerifiesForItsStream) {
  auto ks = keys();
  auto token = issue_token(ks[0], "match1", kNow + 60);
  EXPECT_TRUE(verify_token(ks, token, "match1", kNow, "10.0.0.1"));
}

TEST(ViewerToken, TokenIsUrlSafeText) {
  auto token = issue_token(keys()[0], "match1", kNow + 60, "2001:db8::1");
  for (char c : token)
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') << token;
  EXPECT_LE(token.size(), kMaxTokenLength);
}

TEST(ViewerToken, ExpiredTokenIsUnauthorized) {
  auto ks = keys();
  auto token = issue_token(ks[0], "match1", kNow + 60);
  EXPECT_TRUE(verify_token(ks, token, "match1", kNow + 59, ""));
  std::string_view reason;
  auto r = verify_token(ks, token, "match1", kNow + 60, "", &reason);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthorized);
  EXPECT_EQ(reason, "token expired");
}

TEST(ViewerToken, OtherStreamIsUnauthorized) {
  auto ks = keys();
  auto r = verify_token(ks, issue_token(ks[0], "match1", kNow + 60), "match2", kNow, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthorized);
}

TEST(ViewerToken, ForgedSignatureIsUnauthorized) {
  auto ks = keys();
  auto token = issue_token(ks[0], "match1", kNow + 60);
  token.back() = token.back() == 'A' ? 'B' : 'A';
  auto r = verify_token(ks, token, "match1", kNow, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthorized);
}

TEST(ViewerToken, ExtendedExpiryIsUnauthorized) {
  auto ks = keys();
  auto token = issue_token(ks[0], "match1", kNow + 60);
  auto forged = token;
  forged.replace(forged.find(std::to_string(kNow + 60)), 10, std::to_string(kNow + 99999));
  auto r = verify_token(ks, forged, "match1", kNow, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthorized);
}

TEST(ViewerToken, TokenSignedWithAnotherSecretIsUnauthorized) {
  TokenKey attacker{"k2", "attacker-secret-0123456789"};
  auto r = verify_token(keys(), issue_token(attacker, "match1", kNow + 60), "match1", kNow, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthorized);
}

TEST(ViewerToken, UnknownKeyIdIsUnauthorized) {
  TokenKey other{"k9", "second-secret-0123456789"};
  std::string_view reason;
  auto r = verify_token(keys(), issue_token(other, "match1", kNow + 60), "match1", kNow, "", &reason);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthorized);
  EXPECT_EQ(reason, "token signed with an unknown key");
}

TEST(ViewerToken, EveryListedKeyVerifiesForRotation) {
  auto ks = keys();
  EXPECT_TRUE(verify_token(ks, issue_token(ks[1], "match1", kNow + 60), "match1", kNow, ""));
  std::vector<TokenKey> rotated_out{ks[0]};
  EXPECT_FALSE(verify_token(rotated_out, issue_token(ks[1], "match1", kNow + 60), "match1", kNow, ""));
}

TEST(ViewerToken, IpBoundTokenOnlyPassesForThatAddress) {
  auto ks = keys();
  auto token = issue_token(ks[0], "match1", kNow + 60, "192.0.2.7");
  EXPECT_TRUE(verify_token(ks, token, "match1", kNow, "192.0.2.7"));
  EXPECT_TRUE(verify_token(ks, token, "match1", kNow, "::ffff:192.0.2.7"));
  std::string_view reason;
  auto r = verify_token(ks, token, "match1", kNow, "192.0.2.8", &reason);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthorized);
  EXPECT_EQ(reason, "token bound to another client address");
  EXPECT_FALSE(verify_token(ks, token, "match1", kNow, ""));
}

TEST(ViewerToken, Ipv6AddressesCompareCanonically) {
  auto ks = keys();
  auto token = issue_token(ks[0], "match1", kNow + 60, "2001:DB8:0:0::1");
  EXPECT_TRUE(verify_token(ks, token, "match1", kNow, "2001:db8::1"));
}

TEST(ViewerToken, RemovingIpBindingIsUnauthorized) {
  auto ks = keys();
  auto token = issue_token(ks[0], "match1", kNow + 60, "192.0.2.7");
  // 1.<kid>.<exp>.<ip>.<sig>: drop the IP field.
  auto first = token.find('.', token.find('.', token.find('.') + 1) + 1);
  auto second = token.find('.', first + 1);
  auto stripped = token.substr(0, first + 1) + token.substr(second);
  auto r = verify_token(ks, stripped, "match1", kNow, "198.51.100.1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthorized);
}

TEST(ViewerToken, GarbageIsMalformed) {
  auto ks = keys();
  for (std::string_view bad :
       {"", "x", "1.k1", "1.k2.abc..sig", "2.k2.1.. sig", "1.k2.-5..sig", "1.k2.+5..sig", "1.k2.5.***.sig",
        "1.k2.99999999999999999999999..sig", "1.k2.5...sig.more", "1.k2.5.A.sig"}) {
    auto r = verify_token(ks, bad, "match1", kNow, "");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error(), errc::malformed) << bad;
  }
  EXPECT_EQ(verify_token(ks, std::string(kMaxTokenLength + 1, 'a'), "match1", kNow, "").error(), errc::malformed);
}

TEST(ViewerToken, NoKeysVerifiesNothing) {
  auto token = issue_token(keys()[0], "match1", kNow + 60);
  EXPECT_FALSE(verify_token({}, token, "match1", kNow, ""));
}

TEST(TokenKeys, ParsesListInOrder) {
  auto ks = parse_token_keys(" new:0123456789abcdef0123 , old:fedcba9876543210fedc ");
  ASSERT_TRUE(ks);
  ASSERT_EQ(ks->size(), 2u);
  EXPECT_EQ((*ks)[0].id, "new");
  EXPECT_EQ((*ks)[0].secret, "0123456789abcdef0123");
  EXPECT_EQ((*ks)[1].id, "old");
  EXPECT_EQ(format_token_keys(*ks), "new:0123456789abcdef0123,old:fedcba9876543210fedc");
}

TEST(TokenKeys, ErrorsNameTheProblem) {
  struct Case {
    std::string_view spec, words;
  };
  for (auto [spec, words] :
       {Case{"", "no token key"}, Case{"abc", "no ':'"}, Case{"a.b:0123456789abcdef", "id"},
        Case{"k1:short", "at least 16"}, Case{"k1:0123456789abcdef,k1:0123456789abcdef", "appears twice"}}) {
    std::string why;
    auto r = parse_token_keys(spec, &why);
    ASSERT_FALSE(r) << spec;
    EXPECT_EQ(r.error(), errc::invalid_argument);
    EXPECT_NE(why.find(words), std::string::npos) << spec << ": " << why;
  }
}

TEST(TokenKeys, GeneratedKeysParseAndDiffer) {
  auto a = generate_token_key(), b = generate_token_key();
  EXPECT_NE(a.secret, b.secret);
  auto parsed = parse_token_keys(format_token_keys({a, b}));
  ASSERT_TRUE(parsed);
  EXPECT_EQ((*parsed)[0].secret, a.secret);
}

TEST(TokenKeys, DefaultKeyFileIsCreatedPrivateAndReused) {
  auto dir = std::filesystem::temp_directory_path() /
             ("sf_token_keys_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  std::filesystem::remove_all(dir);
  auto path = (dir / "sub" / "token-keys").string();
  auto first = load_or_create_token_keys(path);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 1u);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto again = load_or_create_token_keys(path);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)[0].secret, (*first)[0].secret);
  std::ofstream(path) << "broken";
  std::string why;
  EXPECT_FALSE(load_or_create_token_keys(path, &why));
  EXPECT_NE(why.find(path), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sf::auth
