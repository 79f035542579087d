// What the ICAP service does with a message that came through the hole (no authenticated
// user) when its own policy snapshot agrees, or does not agree, that it bypasses: never a
// 204 without a check in the direction "the decider bypassed, my policy authenticates".
#include <gtest/gtest.h>

#include "authbypass/icap_plan.h"
#include "authbypass/policy.h"

namespace authbypass::icap {
namespace {

Rule rule_with(Verify v) {
  Rule r;
  r.id = "r";
  r.verify = v;
  return r;
}

TEST(IcapHole, AgreeingPolicyFollowsItsRule) {
  const Rule crl = rule_with(Verify::kCrl), none = rule_with(Verify::kNone);
  HolePlan p = plan_unauthenticated(true, true, false, &crl, nullptr);
  EXPECT_EQ(p.action, HoleAction::kCheck);
  EXPECT_EQ(p.verify, Verify::kCrl);
  EXPECT_FALSE(p.disagrees);
  p = plan_unauthenticated(true, true, false, &none, nullptr);
  EXPECT_EQ(p.action, HoleAction::kAllow);  // the policy in force says: unchecked
  EXPECT_FALSE(p.disagrees);
  EXPECT_EQ(plan_unauthenticated(false, false, false, &crl, nullptr).action, HoleAction::kAllow);
  EXPECT_EQ(plan_unauthenticated(false, false, true, &crl, nullptr).action, HoleAction::kAllow);
  EXPECT_EQ(plan_unauthenticated(false, true, false, &none, nullptr).action,
            HoleAction::kCheckOcspRequest);
}

TEST(IcapHole, ResponseThePolicyNoLongerBypassesIsCheckedNeverAllowed) {
  HolePlan p = plan_unauthenticated(true, true, false, nullptr, nullptr);
  EXPECT_EQ(p.action, HoleAction::kCheck);
  EXPECT_EQ(p.verify, Verify::kRevocation);
  EXPECT_TRUE(p.disagrees);
  // The mark names a rule this policy has: its check; verify none never opens it.
  const Rule ctl = rule_with(Verify::kCtl), none = rule_with(Verify::kNone);
  p = plan_unauthenticated(true, true, false, nullptr, &ctl);
  EXPECT_EQ(p.action, HoleAction::kCheck);
  EXPECT_EQ(p.verify, Verify::kCtl);
  p = plan_unauthenticated(true, true, false, nullptr, &none);
  EXPECT_EQ(p.action, HoleAction::kCheck);
  EXPECT_EQ(p.verify, Verify::kRevocation);
  // Without a body (HEAD, 304) the service's body check has nothing to see: the caller
  // still gets kCheck and answers "no body".
  EXPECT_EQ(plan_unauthenticated(true, false, false, nullptr, nullptr).action, HoleAction::kCheck);
}

TEST(IcapHole, RequestThePolicyNoLongerBypasses) {
  HolePlan p = plan_unauthenticated(false, true, false, nullptr, nullptr);
  EXPECT_EQ(p.action, HoleAction::kCheckOcspRequest);  // an upload is an OCSP request or 403
  EXPECT_TRUE(p.disagrees);
  EXPECT_EQ(plan_unauthenticated(false, false, true, nullptr, nullptr).action, HoleAction::kRefuse);
  // A GET: its response goes through RESPMOD, where it is checked.
  EXPECT_EQ(plan_unauthenticated(false, false, false, nullptr, nullptr).action, HoleAction::kAllow);
}

TEST(IcapHole, MarkedRuleNeedsTheSecretAndOneRuleId) {
  const std::string secret(64, 'a');
  EXPECT_EQ(marked_rule(secret + " crl-files", secret), "crl-files");
  EXPECT_EQ(marked_rule(" " + secret + "\tcrl-files ", secret), "crl-files");
  EXPECT_EQ(marked_rule(std::string(64, 'b') + " crl-files", secret), std::nullopt);
  EXPECT_EQ(marked_rule(secret + "x crl-files", secret), std::nullopt);
  EXPECT_EQ(marked_rule(secret, secret), std::nullopt);
  EXPECT_EQ(marked_rule(secret + " ", secret), std::nullopt);
  EXPECT_EQ(marked_rule(secret + " a b", secret), std::nullopt);
  EXPECT_EQ(marked_rule("x crl-files", ""), std::nullopt);
}

}  // namespace
}  // namespace authbypass::icap
