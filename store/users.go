package store

import "time"

// userModels are the web UI's tables, migrated with the rest.
var userModels = []any{&AdminUser{}, &Session{}}

// AdminUser is a person who signs in to the web UI. PasswordHash is a modern
// password hash, never the password.
type AdminUser struct {
	ID           string    `gorm:"primaryKey;size:36"`
	Username     string    `gorm:"size:100;not null;uniqueIndex"`
	PasswordHash string    `gorm:"size:200;not null"`
	CreatedAt    time.Time `gorm:"not null"`
	UpdatedAt    time.Time `gorm:"not null"`
}

// Session is a signed-in browser. ID is the hash of the session cookie's value.
type Session struct {
	ID        string    `gorm:"primaryKey;size:64"`
	UserID    string    `gorm:"size:36;not null;index"`
	CreatedAt time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
}
