-- CreateTable
CREATE TABLE "messages" (
    "message_id" VARCHAR(64) NOT NULL,
    "room_id" VARCHAR(64) NOT NULL,
    "seq" BIGINT NOT NULL,
    "sender_id" VARCHAR(64) NOT NULL,
    "sender_name" VARCHAR(64),
    "text" TEXT NOT NULL,
    "sent_at" TIMESTAMPTZ(3) NOT NULL,
    "client_msg_id" VARCHAR(64) NOT NULL,
    "stored_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "messages_pkey" PRIMARY KEY ("message_id")
);

-- CreateIndex
CREATE UNIQUE INDEX "messages_room_id_seq_key" ON "messages"("room_id", "seq");
