"use client";

import { TokenLinkPage } from "@/components/token-link";
import { gql } from "@/lib/graphql";
import { ConfirmEmailChangeDocument } from "@/lib/operations";

const confirm = (token: string) => gql(ConfirmEmailChangeDocument, { token });

export default function ConfirmEmail() {
  return (
    <TokenLinkPage title="Confirm your new e-mail address" redeem={confirm} success="Your e-mail address is changed." />
  );
}
