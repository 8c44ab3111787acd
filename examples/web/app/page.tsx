import Link from "next/link";

import { Button } from "@/components/ui/button";

export default function Home() {
  return (
    <section className="grid gap-6">
      <h1 className="text-3xl font-semibold tracking-tight">Welcome</h1>
      <p className="text-muted-foreground">
        Sign in to manage your profile, your sessions and the security of your account.
      </p>
      <div className="flex flex-wrap gap-3">
        <Button asChild>
          <Link href="/sign-in">Sign in</Link>
        </Button>
        <Button asChild variant="outline">
          <Link href="/sign-up">Create an account</Link>
        </Button>
      </div>
    </section>
  );
}
