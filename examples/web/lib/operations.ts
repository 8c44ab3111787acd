// Every GraphQL operation of the app. `npm run codegen` types them from docs/schema.graphql.
import { graphql } from "@/gql";

export const MeDocument = graphql(`
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
`);

export const ProvidersDocument = graphql(`
  query Providers {
    authProviders {
      name
      displayName
    }
  }
`);

export const RegisterDocument = graphql(`
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      id
      email
    }
  }
`);

export const LoginDocument = graphql(`
  mutation Login($input: LoginInput!) {
    login(input: $input) {
      user {
        id
        email
      }
    }
  }
`);

export const VerifyMfaDocument = graphql(`
  mutation VerifyMfa($input: VerifyMfaInput!) {
    verifyMfa(input: $input) {
      user {
        id
        email
      }
    }
  }
`);

export const StartPasskeyLoginDocument = graphql(`
  mutation StartPasskeyLogin {
    startPasskeyLogin {
      ceremony
      options
    }
  }
`);

export const FinishPasskeyLoginDocument = graphql(`
  mutation FinishPasskeyLogin($ceremony: String!, $credential: JSON!) {
    finishPasskeyLogin(ceremony: $ceremony, credential: $credential) {
      user {
        id
        email
      }
    }
  }
`);

export const LogoutDocument = graphql(`
  mutation Logout {
    logout
  }
`);

export const UpdateProfileDocument = graphql(`
  mutation UpdateProfile($input: ProfileInput!) {
    updateProfile(input: $input) {
      displayName
      bio
    }
  }
`);

export const ForgotPasswordDocument = graphql(`
  mutation ForgotPassword($email: String!) {
    forgotPassword(email: $email)
  }
`);

export const ResetPasswordDocument = graphql(`
  mutation ResetPassword($input: ResetPasswordInput!) {
    resetPassword(input: $input)
  }
`);

export const VerifyEmailDocument = graphql(`
  mutation VerifyEmail($token: String!) {
    verifyEmail(token: $token)
  }
`);

export const SetupTotpDocument = graphql(`
  mutation SetupTotp {
    setupTotp {
      secret
      otpauthUrl
    }
  }
`);

export const ConfirmTotpDocument = graphql(`
  mutation ConfirmTotp($code: String!) {
    confirmTotp(code: $code)
  }
`);

export const DisableTotpDocument = graphql(`
  mutation DisableTotp($input: ReauthInput!) {
    disableTotp(input: $input)
  }
`);

export const StartPasskeyRegistrationDocument = graphql(`
  mutation StartPasskeyRegistration {
    startPasskeyRegistration {
      ceremony
      options
    }
  }
`);

export const FinishPasskeyRegistrationDocument = graphql(`
  mutation FinishPasskeyRegistration($ceremony: String!, $credential: JSON!, $name: String) {
    finishPasskeyRegistration(ceremony: $ceremony, credential: $credential, name: $name) {
      passkey {
        id
        name
      }
      recoveryCodes
    }
  }
`);

export const DeletePasskeyDocument = graphql(`
  mutation DeletePasskey($id: ID!, $input: ReauthInput) {
    deletePasskey(id: $id, input: $input)
  }
`);

export const ChangePasswordDocument = graphql(`
  mutation ChangePassword($input: ChangePasswordInput!) {
    changePassword(input: $input)
  }
`);

export const CanAdministerDocument = graphql(`
  query CanAdminister {
    users: checkPermission(request: { permission: "users:manage" }) {
      hasPermission
    }
    roles: checkPermission(request: { permission: "roles:manage" }) {
      hasPermission
    }
  }
`);

export const AdminUsersDocument = graphql(`
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
`);

export const AssignRoleDocument = graphql(`
  mutation AssignRole($input: RoleAssignmentInput!) {
    assignRole(input: $input) {
      changed
    }
  }
`);

export const RevokeRoleDocument = graphql(`
  mutation RevokeRole($input: RoleAssignmentInput!) {
    revokeRole(input: $input) {
      changed
    }
  }
`);

export const UnlinkIdentityDocument = graphql(`
  mutation UnlinkIdentity($id: ID!) {
    unlinkIdentity(id: $id)
  }
`);

export const ChangeEmailDocument = graphql(`
  mutation ChangeEmail($input: ChangeEmailInput!) {
    changeEmail(input: $input)
  }
`);

export const RequestVerificationDocument = graphql(`
  mutation RequestVerification {
    requestEmailVerification
  }
`);

export const ConfirmEmailChangeDocument = graphql(`
  mutation ConfirmEmailChange($token: String!) {
    confirmEmailChange(token: $token)
  }
`);
