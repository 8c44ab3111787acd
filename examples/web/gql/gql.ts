/* eslint-disable */
import * as types from './graphql';



/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  query Me {\n    me {\n      user {\n        id\n        email\n        emailVerified\n        createdAt\n      }\n      roles\n      permissions\n      signInMethods\n      profile {\n        displayName\n        firstName\n        lastName\n        bio\n        locale\n        timezone\n      }\n      identities {\n        id\n        provider\n        email\n        lastUsedAt\n      }\n      mfa {\n        totp\n        recoveryCodesLeft\n        passkeys {\n          id\n          name\n          createdAt\n          lastUsedAt\n        }\n      }\n    }\n  }\n": typeof types.MeDocument,
    "\n  query Providers {\n    authProviders {\n      name\n      displayName\n    }\n  }\n": typeof types.ProvidersDocument,
    "\n  mutation Register($input: RegisterInput!) {\n    register(input: $input) {\n      id\n      email\n    }\n  }\n": typeof types.RegisterDocument,
    "\n  mutation Login($input: LoginInput!) {\n    login(input: $input) {\n      user {\n        id\n        email\n      }\n    }\n  }\n": typeof types.LoginDocument,
    "\n  mutation VerifyMfa($input: VerifyMfaInput!) {\n    verifyMfa(input: $input) {\n      user {\n        id\n        email\n      }\n    }\n  }\n": typeof types.VerifyMfaDocument,
    "\n  mutation StartPasskeyLogin {\n    startPasskeyLogin {\n      ceremony\n      options\n    }\n  }\n": typeof types.StartPasskeyLoginDocument,
    "\n  mutation FinishPasskeyLogin($ceremony: String!, $credential: JSON!) {\n    finishPasskeyLogin(ceremony: $ceremony, credential: $credential) {\n      user {\n        id\n        email\n      }\n    }\n  }\n": typeof types.FinishPasskeyLoginDocument,
    "\n  mutation Logout {\n    logout\n  }\n": typeof types.LogoutDocument,
    "\n  mutation UpdateProfile($input: ProfileInput!) {\n    updateProfile(input: $input) {\n      displayName\n      bio\n    }\n  }\n": typeof types.UpdateProfileDocument,
    "\n  mutation ForgotPassword($email: String!) {\n    forgotPassword(email: $email)\n  }\n": typeof types.ForgotPasswordDocument,
    "\n  mutation ResetPassword($input: ResetPasswordInput!) {\n    resetPassword(input: $input)\n  }\n": typeof types.ResetPasswordDocument,
    "\n  mutation VerifyEmail($token: String!) {\n    verifyEmail(token: $token)\n  }\n": typeof types.VerifyEmailDocument,
    "\n  mutation SetupTotp {\n    setupTotp {\n      secret\n      otpauthUrl\n    }\n  }\n": typeof types.SetupTotpDocument,
    "\n  mutation ConfirmTotp($code: String!) {\n    confirmTotp(code: $code)\n  }\n": typeof types.ConfirmTotpDocument,
    "\n  mutation DisableTotp($input: ReauthInput!) {\n    disableTotp(input: $input)\n  }\n": typeof types.DisableTotpDocument,
    "\n  mutation StartPasskeyRegistration {\n    startPasskeyRegistration {\n      ceremony\n      options\n    }\n  }\n": typeof types.StartPasskeyRegistrationDocument,
    "\n  mutation FinishPasskeyRegistration($ceremony: String!, $credential: JSON!, $name: String) {\n    finishPasskeyRegistration(ceremony: $ceremony, credential: $credential, name: $name) {\n      passkey {\n        id\n        name\n      }\n      recoveryCodes\n    }\n  }\n": typeof types.FinishPasskeyRegistrationDocument,
    "\n  mutation DeletePasskey($id: ID!, $input: ReauthInput) {\n    deletePasskey(id: $id, input: $input)\n  }\n": typeof types.DeletePasskeyDocument,
    "\n  mutation ChangePassword($input: ChangePasswordInput!) {\n    changePassword(input: $input)\n  }\n": typeof types.ChangePasswordDocument,
    "\n  query CanAdminister {\n    users: checkPermission(request: { permission: \"users:manage\" }) {\n      hasPermission\n    }\n    roles: checkPermission(request: { permission: \"roles:manage\" }) {\n      hasPermission\n    }\n  }\n": typeof types.CanAdministerDocument,
    "\n  query AdminUsers($query: String, $first: Int!, $after: String) {\n    adminUsers(query: $query, first: $first, after: $after) {\n      users {\n        id\n        email\n        emailVerified\n        state\n        roles\n        createdAt\n        lastSignInAt\n      }\n      next\n    }\n    roles {\n      name\n      description\n    }\n  }\n": typeof types.AdminUsersDocument,
    "\n  mutation AssignRole($input: RoleAssignmentInput!) {\n    assignRole(input: $input) {\n      changed\n    }\n  }\n": typeof types.AssignRoleDocument,
    "\n  mutation RevokeRole($input: RoleAssignmentInput!) {\n    revokeRole(input: $input) {\n      changed\n    }\n  }\n": typeof types.RevokeRoleDocument,
    "\n  mutation UnlinkIdentity($id: ID!) {\n    unlinkIdentity(id: $id)\n  }\n": typeof types.UnlinkIdentityDocument,
    "\n  mutation ChangeEmail($input: ChangeEmailInput!) {\n    changeEmail(input: $input)\n  }\n": typeof types.ChangeEmailDocument,
    "\n  mutation RequestVerification {\n    requestEmailVerification\n  }\n": typeof types.RequestVerificationDocument,
    "\n  mutation ConfirmEmailChange($token: String!) {\n    confirmEmailChange(token: $token)\n  }\n": typeof types.ConfirmEmailChangeDocument,
};
const documents: Documents = {
    "\n  query Me {\n    me {\n      user {\n        id\n        email\n        emailVerified\n        createdAt\n      }\n      roles\n      permissions\n      signInMethods\n      profile {\n        displayName\n        firstName\n        lastName\n        bio\n        locale\n        timezone\n      }\n      identities {\n        id\n        provider\n        email\n        lastUsedAt\n      }\n      mfa {\n        totp\n        recoveryCodesLeft\n        passkeys {\n          id\n          name\n          createdAt\n          lastUsedAt\n        }\n      }\n    }\n  }\n": types.MeDocument,
    "\n  query Providers {\n    authProviders {\n      name\n      displayName\n    }\n  }\n": types.ProvidersDocument,
    "\n  mutation Register($input: RegisterInput!) {\n    register(input: $input) {\n      id\n      email\n    }\n  }\n": types.RegisterDocument,
    "\n  mutation Login($input: LoginInput!) {\n    login(input: $input) {\n      user {\n        id\n        email\n      }\n    }\n  }\n": types.LoginDocument,
    "\n  mutation VerifyMfa($input: VerifyMfaInput!) {\n    verifyMfa(input: $input) {\n      user {\n        id\n        email\n      }\n    }\n  }\n": types.VerifyMfaDocument,
    "\n  mutation StartPasskeyLogin {\n    startPasskeyLogin {\n      ceremony\n      options\n    }\n  }\n": types.StartPasskeyLoginDocument,
    "\n  mutation FinishPasskeyLogin($ceremony: String!, $credential: JSON!) {\n    finishPasskeyLogin(ceremony: $ceremony, credential: $credential) {\n      user {\n        id\n        email\n      }\n    }\n  }\n": types.FinishPasskeyLoginDocument,
    "\n  mutation Logout {\n    logout\n  }\n": types.LogoutDocument,
    "\n  mutation UpdateProfile($input: ProfileInput!) {\n    updateProfile(input: $input) {\n      displayName\n      bio\n    }\n  }\n": types.UpdateProfileDocument,
    "\n  mutation ForgotPassword($email: String!) {\n    forgotPassword(email: $email)\n  }\n": types.ForgotPasswordDocument,
    "\n  mutation ResetPassword($input: ResetPasswordInput!) {\n    resetPassword(input: $input)\n  }\n": types.ResetPasswordDocument,
    "\n  mutation VerifyEmail($token: String!) {\n    verifyEmail(token: $token)\n  }\n": types.VerifyEmailDocument,
    "\n  mutation SetupTotp {\n    setupTotp {\n      secret\n      otpauthUrl\n    }\n  }\n": types.SetupTotpDocument,
    "\n  mutation ConfirmTotp($code: String!) {\n    confirmTotp(code: $code)\n  }\n": types.ConfirmTotpDocument,
    "\n  mutation DisableTotp($input: ReauthInput!) {\n    disableTotp(input: $input)\n  }\n": types.DisableTotpDocument,
    "\n  mutation StartPasskeyRegistration {\n    startPasskeyRegistration {\n      ceremony\n      options\n    }\n  }\n": types.StartPasskeyRegistrationDocument,
    "\n  mutation FinishPasskeyRegistration($ceremony: String!, $credential: JSON!, $name: String) {\n    finishPasskeyRegistration(ceremony: $ceremony, credential: $credential, name: $name) {\n      passkey {\n        id\n        name\n      }\n      recoveryCodes\n    }\n  }\n": types.FinishPasskeyRegistrationDocument,
    "\n  mutation DeletePasskey($id: ID!, $input: ReauthInput) {\n    deletePasskey(id: $id, input: $input)\n  }\n": types.DeletePasskeyDocument,
    "\n  mutation ChangePassword($input: ChangePasswordInput!) {\n    changePassword(input: $input)\n  }\n": types.ChangePasswordDocument,
    "\n  query CanAdminister {\n    users: checkPermission(request: { permission: \"users:manage\" }) {\n      hasPermission\n    }\n    roles: checkPermission(request: { permission: \"roles:manage\" }) {\n      hasPermission\n    }\n  }\n": types.CanAdministerDocument,
    "\n  query AdminUsers($query: String, $first: Int!, $after: String) {\n    adminUsers(query: $query, first: $first, after: $after) {\n      users {\n        id\n        email\n        emailVerified\n        state\n        roles\n        createdAt\n        lastSignInAt\n      }\n      next\n    }\n    roles {\n      name\n      description\n    }\n  }\n": types.AdminUsersDocument,
    "\n  mutation AssignRole($input: RoleAssignmentInput!) {\n    assignRole(input: $input) {\n      changed\n    }\n  }\n": types.AssignRoleDocument,
    "\n  mutation RevokeRole($input: RoleAssignmentInput!) {\n    revokeRole(input: $input) {\n      changed\n    }\n  }\n": types.RevokeRoleDocument,
    "\n  mutation UnlinkIdentity($id: ID!) {\n    unlinkIdentity(id: $id)\n  }\n": types.UnlinkIdentityDocument,
    "\n  mutation ChangeEmail($input: ChangeEmailInput!) {\n    changeEmail(input: $input)\n  }\n": types.ChangeEmailDocument,
    "\n  mutation RequestVerification {\n    requestEmailVerification\n  }\n": types.RequestVerificationDocument,
    "\n  mutation ConfirmEmailChange($token: String!) {\n    confirmEmailChange(token: $token)\n  }\n": types.ConfirmEmailChangeDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Me {\n    me {\n      user {\n        id\n        email\n        emailVerified\n        createdAt\n      }\n      roles\n      permissions\n      signInMethods\n      profile {\n        displayName\n        firstName\n        lastName\n        bio\n        locale\n        timezone\n      }\n      identities {\n        id\n        provider\n        email\n        lastUsedAt\n      }\n      mfa {\n        totp\n        recoveryCodesLeft\n        passkeys {\n          id\n          name\n          createdAt\n          lastUsedAt\n        }\n      }\n    }\n  }\n"): typeof import('./graphql').MeDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Providers {\n    authProviders {\n      name\n      displayName\n    }\n  }\n"): typeof import('./graphql').ProvidersDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Register($input: RegisterInput!) {\n    register(input: $input) {\n      id\n      email\n    }\n  }\n"): typeof import('./graphql').RegisterDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Login($input: LoginInput!) {\n    login(input: $input) {\n      user {\n        id\n        email\n      }\n    }\n  }\n"): typeof import('./graphql').LoginDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation VerifyMfa($input: VerifyMfaInput!) {\n    verifyMfa(input: $input) {\n      user {\n        id\n        email\n      }\n    }\n  }\n"): typeof import('./graphql').VerifyMfaDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation StartPasskeyLogin {\n    startPasskeyLogin {\n      ceremony\n      options\n    }\n  }\n"): typeof import('./graphql').StartPasskeyLoginDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation FinishPasskeyLogin($ceremony: String!, $credential: JSON!) {\n    finishPasskeyLogin(ceremony: $ceremony, credential: $credential) {\n      user {\n        id\n        email\n      }\n    }\n  }\n"): typeof import('./graphql').FinishPasskeyLoginDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Logout {\n    logout\n  }\n"): typeof import('./graphql').LogoutDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateProfile($input: ProfileInput!) {\n    updateProfile(input: $input) {\n      displayName\n      bio\n    }\n  }\n"): typeof import('./graphql').UpdateProfileDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ForgotPassword($email: String!) {\n    forgotPassword(email: $email)\n  }\n"): typeof import('./graphql').ForgotPasswordDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ResetPassword($input: ResetPasswordInput!) {\n    resetPassword(input: $input)\n  }\n"): typeof import('./graphql').ResetPasswordDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation VerifyEmail($token: String!) {\n    verifyEmail(token: $token)\n  }\n"): typeof import('./graphql').VerifyEmailDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetupTotp {\n    setupTotp {\n      secret\n      otpauthUrl\n    }\n  }\n"): typeof import('./graphql').SetupTotpDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ConfirmTotp($code: String!) {\n    confirmTotp(code: $code)\n  }\n"): typeof import('./graphql').ConfirmTotpDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DisableTotp($input: ReauthInput!) {\n    disableTotp(input: $input)\n  }\n"): typeof import('./graphql').DisableTotpDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation StartPasskeyRegistration {\n    startPasskeyRegistration {\n      ceremony\n      options\n    }\n  }\n"): typeof import('./graphql').StartPasskeyRegistrationDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation FinishPasskeyRegistration($ceremony: String!, $credential: JSON!, $name: String) {\n    finishPasskeyRegistration(ceremony: $ceremony, credential: $credential, name: $name) {\n      passkey {\n        id\n        name\n      }\n      recoveryCodes\n    }\n  }\n"): typeof import('./graphql').FinishPasskeyRegistrationDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeletePasskey($id: ID!, $input: ReauthInput) {\n    deletePasskey(id: $id, input: $input)\n  }\n"): typeof import('./graphql').DeletePasskeyDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ChangePassword($input: ChangePasswordInput!) {\n    changePassword(input: $input)\n  }\n"): typeof import('./graphql').ChangePasswordDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CanAdminister {\n    users: checkPermission(request: { permission: \"users:manage\" }) {\n      hasPermission\n    }\n    roles: checkPermission(request: { permission: \"roles:manage\" }) {\n      hasPermission\n    }\n  }\n"): typeof import('./graphql').CanAdministerDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query AdminUsers($query: String, $first: Int!, $after: String) {\n    adminUsers(query: $query, first: $first, after: $after) {\n      users {\n        id\n        email\n        emailVerified\n        state\n        roles\n        createdAt\n        lastSignInAt\n      }\n      next\n    }\n    roles {\n      name\n      description\n    }\n  }\n"): typeof import('./graphql').AdminUsersDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation AssignRole($input: RoleAssignmentInput!) {\n    assignRole(input: $input) {\n      changed\n    }\n  }\n"): typeof import('./graphql').AssignRoleDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeRole($input: RoleAssignmentInput!) {\n    revokeRole(input: $input) {\n      changed\n    }\n  }\n"): typeof import('./graphql').RevokeRoleDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UnlinkIdentity($id: ID!) {\n    unlinkIdentity(id: $id)\n  }\n"): typeof import('./graphql').UnlinkIdentityDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ChangeEmail($input: ChangeEmailInput!) {\n    changeEmail(input: $input)\n  }\n"): typeof import('./graphql').ChangeEmailDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RequestVerification {\n    requestEmailVerification\n  }\n"): typeof import('./graphql').RequestVerificationDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ConfirmEmailChange($token: String!) {\n    confirmEmailChange(token: $token)\n  }\n"): typeof import('./graphql').ConfirmEmailChangeDocument;


export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}
