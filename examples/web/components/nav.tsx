"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";
import { useEffect, useState } from "react";

import { gql } from "@/lib/graphql";
import { CanAdministerDocument } from "@/lib/operations";
import { cn } from "@/lib/utils";

type Who = "anonymous" | "member" | "admin";

export function Nav() {
  const path = usePathname();
  const [who, setWho] = useState<Who>("anonymous");

  useEffect(() => {
    // Asked again on each page: signing in or out changes the links.
    gql(CanAdministerDocument)
      .then((d) => setWho(d.users?.hasPermission ? "admin" : "member"))
      .catch(() => setWho("anonymous"));
  }, [path]);

  const links =
    who === "anonymous"
      ? [
          { href: "/sign-in", label: "Sign in" },
          { href: "/sign-up", label: "Sign up" },
        ]
      : [
          { href: "/account", label: "Account" },
          ...(who === "admin" ? [{ href: "/admin", label: "Admin" }] : []),
        ];

  return (
    <header className="border-b">
      <nav aria-label="Main" className="mx-auto flex max-w-3xl items-center justify-between gap-4 px-4 py-3">
        <Link href="/" className="font-semibold tracking-tight">
          Fafnir
        </Link>
        <ul className="flex gap-1 text-sm">
          {links.map((l) => (
            <li key={l.href}>
              <Link
                href={l.href}
                aria-current={path === l.href ? "page" : undefined}
                className={cn(
                  "rounded-md px-3 py-2 hover:bg-accent focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-ring",
                  path === l.href && "bg-accent font-medium",
                )}
              >
                {l.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
    </header>
  );
}
