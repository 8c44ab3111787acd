"use client";

import { TokenLinkPage } from "@/components/token-link";
import { gql } from "@/lib/graphql";
import { VerifyEmailDocument } from "@/lib/operations";

const verify = (token: string) => gql(VerifyEmailDocument, { token });

export default function VerifyEmail() {
  return <TokenLinkPage title="Verify your e-mail address" redeem={verify} success="Your e-mail address is verified." />;
}
