/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
export type ChangeEmailInput = {
  /** Required, except for an account without a password (within 10 minutes of signing in). */
  currentPassword?: string | null | undefined;
  newEmail: string;
};

export type ChangePasswordInput = {
  /**
   * Required, except for an account without a password setting its first one (within 10
   * minutes of signing in).
   */
  currentPassword?: string | null | undefined;
  newPassword: string;
};

export type LoginInput = {
  email: string;
  password: string;
};

/** A partial update: an absent field is left alone, `null` clears it, a value sets it. */
export type ProfileInput = {
  avatarUrl?: string | null | undefined;
  bio?: string | null | undefined;
  displayName?: string | null | undefined;
  firstName?: string | null | undefined;
  lastName?: string | null | undefined;
  locale?: string | null | undefined;
  timezone?: string | null | undefined;
};

/** Re-authentication for a sensitive change: exactly one of these. */
export type ReauthInput = {
  code?: string | null | undefined;
  password?: string | null | undefined;
  recoveryCode?: string | null | undefined;
};

export type RegisterInput = {
  displayName?: string | null | undefined;
  email: string;
  password: string;
};

export type ResetPasswordInput = {
  newPassword: string;
  /** The `token` of the reset link. */
  token: string;
};

export type RoleAssignmentInput = {
  /** A role name, e.g. `admin`. */
  role: string;
  userId: string | number;
};

export type VerifyMfaInput = {
  /** A 6-digit TOTP code. */
  code?: string | null | undefined;
  /** From the `login` error's `extensions.mfaToken`. */
  mfaToken: string;
  recoveryCode?: string | null | undefined;
};

export type MeQueryVariables = Exact<{ [key: string]: never; }>;


export type MeQuery = { me: { roles: Array<string> | null, permissions: Array<string> | null, signInMethods: Array<string>, user: { id: string, email: string, emailVerified: boolean, createdAt: string }, profile: { displayName: string | null, firstName: string | null, lastName: string | null, bio: string | null, locale: string | null, timezone: string | null } | null, identities: Array<{ id: string, provider: string, email: string | null, lastUsedAt: string }>, mfa: { totp: boolean, recoveryCodesLeft: number, passkeys: Array<{ id: string, name: string, createdAt: string, lastUsedAt: string | null }> } } | null };

export type ProvidersQueryVariables = Exact<{ [key: string]: never; }>;


export type ProvidersQuery = { authProviders: Array<{ name: string, displayName: string }> };

export type RegisterMutationVariables = Exact<{
  input: RegisterInput;
}>;


export type RegisterMutation = { register: { id: string, email: string } | null };

export type LoginMutationVariables = Exact<{
  input: LoginInput;
}>;


export type LoginMutation = { login: { user: { id: string, email: string } } | null };

export type VerifyMfaMutationVariables = Exact<{
  input: VerifyMfaInput;
}>;


export type VerifyMfaMutation = { verifyMfa: { user: { id: string, email: string } } | null };

export type StartPasskeyLoginMutationVariables = Exact<{ [key: string]: never; }>;


export type StartPasskeyLoginMutation = { startPasskeyLogin: { ceremony: string, options: unknown } | null };

export type FinishPasskeyLoginMutationVariables = Exact<{
  ceremony: string;
  credential: unknown;
}>;


export type FinishPasskeyLoginMutation = { finishPasskeyLogin: { user: { id: string, email: string } } | null };

export type LogoutMutationVariables = Exact<{ [key: string]: never; }>;


export type LogoutMutation = { logout: boolean | null };

export type UpdateProfileMutationVariables = Exact<{
  input: ProfileInput;
}>;


export type UpdateProfileMutation = { updateProfile: { displayName: string | null, bio: string | null } | null };

export type ForgotPasswordMutationVariables = Exact<{
  email: string;
}>;


export type ForgotPasswordMutation = { forgotPassword: boolean | null };

export type ResetPasswordMutationVariables = Exact<{
  input: ResetPasswordInput;
}>;


export type ResetPasswordMutation = { resetPassword: boolean | null };

export type VerifyEmailMutationVariables = Exact<{
  token: string;
}>;


export type VerifyEmailMutation = { verifyEmail: boolean | null };

export type SetupTotpMutationVariables = Exact<{ [key: string]: never; }>;


export type SetupTotpMutation = { setupTotp: { secret: string, otpauthUrl: string } | null };

export type ConfirmTotpMutationVariables = Exact<{
  code: string;
}>;


export type ConfirmTotpMutation = { confirmTotp: Array<string> | null };

export type DisableTotpMutationVariables = Exact<{
  input: ReauthInput;
}>;


export type DisableTotpMutation = { disableTotp: boolean | null };

export type StartPasskeyRegistrationMutationVariables = Exact<{ [key: string]: never; }>;


export type StartPasskeyRegistrationMutation = { startPasskeyRegistration: { ceremony: string, options: unknown } | null };

export type FinishPasskeyRegistrationMutationVariables = Exact<{
  ceremony: string;
  credential: unknown;
  name?: string | null | undefined;
}>;


export type FinishPasskeyRegistrationMutation = { finishPasskeyRegistration: { recoveryCodes: Array<string> | null, passkey: { id: string, name: string } } | null };

export type DeletePasskeyMutationVariables = Exact<{
  id: string | number;
  input?: ReauthInput | null | undefined;
}>;


export type DeletePasskeyMutation = { deletePasskey: boolean | null };

export type ChangePasswordMutationVariables = Exact<{
  input: ChangePasswordInput;
}>;


export type ChangePasswordMutation = { changePassword: boolean | null };

export type CanAdministerQueryVariables = Exact<{ [key: string]: never; }>;


export type CanAdministerQuery = { users: { hasPermission: boolean } | null, roles: { hasPermission: boolean } | null };

export type AdminUsersQueryVariables = Exact<{
  query?: string | null | undefined;
  first: number;
  after?: string | null | undefined;
}>;


export type AdminUsersQuery = { adminUsers: { next: string | null, users: Array<{ id: string, email: string, emailVerified: boolean, state: string, roles: Array<string>, createdAt: string, lastSignInAt: string | null }> } | null, roles: Array<{ name: string, description: string }> | null };

export type AssignRoleMutationVariables = Exact<{
  input: RoleAssignmentInput;
}>;


export type AssignRoleMutation = { assignRole: { changed: boolean } | null };

export type RevokeRoleMutationVariables = Exact<{
  input: RoleAssignmentInput;
}>;


export type RevokeRoleMutation = { revokeRole: { changed: boolean } | null };

export type UnlinkIdentityMutationVariables = Exact<{
  id: string | number;
}>;


export type UnlinkIdentityMutation = { unlinkIdentity: boolean | null };

export type ChangeEmailMutationVariables = Exact<{
  input: ChangeEmailInput;
}>;


export type ChangeEmailMutation = { changeEmail: boolean | null };

export type RequestVerificationMutationVariables = Exact<{ [key: string]: never; }>;


export type RequestVerificationMutation = { requestEmailVerification: boolean | null };

export type ConfirmEmailChangeMutationVariables = Exact<{
  token: string;
}>;


export type ConfirmEmailChangeMutation = { confirmEmailChange: boolean | null };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}

export const MeDocument = new TypedDocumentString(`
    query Me {
  me {
    user {
      id
      email
      emailVerified
      createdAt
    }
    roles
    permissions
    signInMethods
    profile {
      displayName
      firstName
      lastName
      bio
      locale
      timezone
    }
    identities {
      id
      provider
      email
      lastUsedAt
    }
    mfa {
      totp
      recoveryCodesLeft
      passkeys {
        id
        name
        createdAt
        lastUsedAt
      }
    }
  }
}
    `) as unknown as TypedDocumentString<MeQuery, MeQueryVariables>;
export const ProvidersDocument = new TypedDocumentString(`
    query Providers {
  authProviders {
    name
    displayName
  }
}
    `) as unknown as TypedDocumentString<ProvidersQuery, ProvidersQueryVariables>;
export const RegisterDocument = new TypedDocumentString(`
    mutation Register($input: RegisterInput!) {
  register(input: $input) {
    id
    email
  }
}
    `) as unknown as TypedDocumentString<RegisterMutation, RegisterMutationVariables>;
export const LoginDocument = new TypedDocumentString(`
    mutation Login($input: LoginInput!) {
  login(input: $input) {
    user {
      id
      email
    }
  }
}
    `) as unknown as TypedDocumentString<LoginMutation, LoginMutationVariables>;
export const VerifyMfaDocument = new TypedDocumentString(`
    mutation VerifyMfa($input: VerifyMfaInput!) {
  verifyMfa(input: $input) {
    user {
      id
      email
    }
  }
}
    `) as unknown as TypedDocumentString<VerifyMfaMutation, VerifyMfaMutationVariables>;
export const StartPasskeyLoginDocument = new TypedDocumentString(`
    mutation StartPasskeyLogin {
  startPasskeyLogin {
    ceremony
    options
  }
}
    `) as unknown as TypedDocumentString<StartPasskeyLoginMutation, StartPasskeyLoginMutationVariables>;
export const FinishPasskeyLoginDocument = new TypedDocumentString(`
    mutation FinishPasskeyLogin($ceremony: String!, $credential: JSON!) {
  finishPasskeyLogin(ceremony: $ceremony, credential: $credential) {
    user {
      id
      email
    }
  }
}
    `) as unknown as TypedDocumentString<FinishPasskeyLoginMutation, FinishPasskeyLoginMutationVariables>;
export const LogoutDocument = new TypedDocumentString(`
    mutation Logout {
  logout
}
    `) as unknown as TypedDocumentString<LogoutMutation, LogoutMutationVariables>;
export const UpdateProfileDocument = new TypedDocumentString(`
    mutation UpdateProfile($input: ProfileInput!) {
  updateProfile(input: $input) {
    displayName
    bio
  }
}
    `) as unknown as TypedDocumentString<UpdateProfileMutation, UpdateProfileMutationVariables>;
export const ForgotPasswordDocument = new TypedDocumentString(`
    mutation ForgotPassword($email: String!) {
  forgotPassword(email: $email)
}
    `) as unknown as TypedDocumentString<ForgotPasswordMutation, ForgotPasswordMutationVariables>;
export const ResetPasswordDocument = new TypedDocumentString(`
    mutation ResetPassword($input: ResetPasswordInput!) {
  resetPassword(input: $input)
}
    `) as unknown as TypedDocumentString<ResetPasswordMutation, ResetPasswordMutationVariables>;
export const VerifyEmailDocument = new TypedDocumentString(`
    mutation VerifyEmail($token: String!) {
  verifyEmail(token: $token)
}
    `) as unknown as TypedDocumentString<VerifyEmailMutation, VerifyEmailMutationVariables>;
export const SetupTotpDocument = new TypedDocumentString(`
    mutation SetupTotp {
  setupTotp {
    secret
    otpauthUrl
  }
}
    `) as unknown as TypedDocumentString<SetupTotpMutation, SetupTotpMutationVariables>;
export const ConfirmTotpDocument = new TypedDocumentString(`
    mutation ConfirmTotp($code: String!) {
  confirmTotp(code: $code)
}
    `) as unknown as TypedDocumentString<ConfirmTotpMutation, ConfirmTotpMutationVariables>;
export const DisableTotpDocument = new TypedDocumentString(`
    mutation DisableTotp($input: ReauthInput!) {
  disableTotp(input: $input)
}
    `) as unknown as TypedDocumentString<DisableTotpMutation, DisableTotpMutationVariables>;
export const StartPasskeyRegistrationDocument = new TypedDocumentString(`
    mutation StartPasskeyRegistration {
  startPasskeyRegistration {
    ceremony
    options
  }
}
    `) as unknown as TypedDocumentString<StartPasskeyRegistrationMutation, StartPasskeyRegistrationMutationVariables>;
export const FinishPasskeyRegistrationDocument = new TypedDocumentString(`
    mutation FinishPasskeyRegistration($ceremony: String!, $credential: JSON!, $name: String) {
  finishPasskeyRegistration(
    ceremony: $ceremony
    credential: $credential
    name: $name
  ) {
    passkey {
      id
      name
    }
    recoveryCodes
  }
}
    `) as unknown as TypedDocumentString<FinishPasskeyRegistrationMutation, FinishPasskeyRegistrationMutationVariables>;
export const DeletePasskeyDocument = new TypedDocumentString(`
    mutation DeletePasskey($id: ID!, $input: ReauthInput) {
  deletePasskey(id: $id, input: $input)
}
    `) as unknown as TypedDocumentString<DeletePasskeyMutation, DeletePasskeyMutationVariables>;
export const ChangePasswordDocument = new TypedDocumentString(`
    mutation ChangePassword($input: ChangePasswordInput!) {
  changePassword(input: $input)
}
    `) as unknown as TypedDocumentString<ChangePasswordMutation, ChangePasswordMutationVariables>;
export const CanAdministerDocument = new TypedDocumentString(`
    query CanAdminister {
  users: checkPermission(request: {permission: "users:manage"}) {
    hasPermission
  }
  roles: checkPermission(request: {permission: "roles:manage"}) {
    hasPermission
  }
}
    `) as unknown as TypedDocumentString<CanAdministerQuery, CanAdministerQueryVariables>;
export const AdminUsersDocument = new TypedDocumentString(`
    query AdminUsers($query: String, $first: Int!, $after: String) {
  adminUsers(query: $query, first: $first, after: $after) {
    users {
      id
      email
      emailVerified
      state
      roles
      createdAt
      lastSignInAt
    }
    next
  }
  roles {
    name
    description
  }
}
    `) as unknown as TypedDocumentString<AdminUsersQuery, AdminUsersQueryVariables>;
export const AssignRoleDocument = new TypedDocumentString(`
    mutation AssignRole($input: RoleAssignmentInput!) {
  assignRole(input: $input) {
    changed
  }
}
    `) as unknown as TypedDocumentString<AssignRoleMutation, AssignRoleMutationVariables>;
export const RevokeRoleDocument = new TypedDocumentString(`
    mutation RevokeRole($input: RoleAssignmentInput!) {
  revokeRole(input: $input) {
    changed
  }
}
    `) as unknown as TypedDocumentString<RevokeRoleMutation, RevokeRoleMutationVariables>;
export const UnlinkIdentityDocument = new TypedDocumentString(`
    mutation UnlinkIdentity($id: ID!) {
  unlinkIdentity(id: $id)
}
    `) as unknown as TypedDocumentString<UnlinkIdentityMutation, UnlinkIdentityMutationVariables>;
export const ChangeEmailDocument = new TypedDocumentString(`
    mutation ChangeEmail($input: ChangeEmailInput!) {
  changeEmail(input: $input)
}
    `) as unknown as TypedDocumentString<ChangeEmailMutation, ChangeEmailMutationVariables>;
export const RequestVerificationDocument = new TypedDocumentString(`
    mutation RequestVerification {
  requestEmailVerification
}
    `) as unknown as TypedDocumentString<RequestVerificationMutation, RequestVerificationMutationVariables>;
export const ConfirmEmailChangeDocument = new TypedDocumentString(`
    mutation ConfirmEmailChange($token: String!) {
  confirmEmailChange(token: $token)
}
    `) as unknown as TypedDocumentString<ConfirmEmailChangeMutation, ConfirmEmailChangeMutationVariables>;