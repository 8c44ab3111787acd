import { cva, type VariantProps } from "class-variance-authority";
import * as React from "react";

import { cn } from "@/lib/utils";

const alertVariants = cva("relative w-full rounded-lg border p-4 text-sm", {
  variants: {
    variant: {
      default: "bg-background text-foreground",
      destructive: "border-destructive/50 text-destructive dark:border-destructive",
      success: "border-emerald-600/40 text-emerald-700 dark:text-emerald-400",
    },
  },
  defaultVariants: { variant: "default" },
});

export function Alert({
  className,
  variant,
  ...props
}: React.HTMLAttributes<HTMLDivElement> & VariantProps<typeof alertVariants>) {
  // Errors interrupt (assertive); other notices wait their turn.
  const role = variant === "destructive" ? "alert" : "status";
  return <div role={role} data-slot="alert" className={cn(alertVariants({ variant }), className)} {...props} />;
}
